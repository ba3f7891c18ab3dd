"""``bitfit``: train only the bias terms and the classification head (Ben Zaken et al., 2022).

BitFit freezes every weight matrix and trains the bias terms alone; the new classification head,
which every tl_toolkit strategy trains, trains in full. With ``norm: true`` the weights (scales) of
the normalisation layers train too. The run is saved in the backbone's own format (the default
``Strategy.save`` / ``load``), so ``tl predict`` and the plain libraries read it like a ``full`` run.

A third-party plugin: its own distribution (``tl-bitfit``), found by tl_toolkit only through its
entry point in ``tl_toolkit.strategies``. Importing it does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tl_toolkit import Backbone, Strategy

if TYPE_CHECKING:
    from torch import nn

__all__ = ["BitFitOptions", "BitFitStrategy", "is_bias"]


class BitFitOptions(BaseModel):
    """Options of the ``bitfit`` strategy (``strategy.options``)."""

    model_config = ConfigDict(extra="forbid")

    norm: bool = Field(False, description="also train the weights of normalisation layers")


def is_bias(name: str) -> bool:
    """Whether a parameter's qualified name is a bias term (``bias``, or ``in_proj_bias`` and the like)."""
    leaf = name.rsplit(".", 1)[-1]
    return leaf == "bias" or leaf.endswith("_bias")


class BitFitStrategy(Strategy):
    """Train only the bias terms and the head (BitFit); every weight matrix stays frozen."""

    options_model = BitFitOptions
    plugin_api = 1

    def apply(self, model: nn.Module, backbone: Backbone) -> nn.Module:
        from torch import nn  # imported here: `tl list` must not pay for torch

        opts = BitFitOptions.model_validate(self.options)
        norms = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
                 nn.SyncBatchNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
        model.requires_grad_(False)
        for name, param in model.named_parameters():
            if is_bias(name):
                param.requires_grad_(True)
        if opts.norm:
            for module in model.modules():
                if isinstance(module, norms):
                    module.requires_grad_(True)
        for name in backbone.head_names(model):  # the new head always trains in full
            model.get_submodule(name).requires_grad_(True)
        return model
