"""``full``: parameter transfer, every weight of the pretrained model trains.

``layer_decay`` (e.g. 0.8) turns on layer-wise learning-rate decay: the head
trains at ``train.lr`` and each backbone block below it at ``layer_decay``
times the rate of the block above, so the general features near the input
move least.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from tl_toolkit import Backbone, Strategy, blocks_of, layerwise_groups

if TYPE_CHECKING:
    from torch import nn

__all__ = ["FullOptions", "FullStrategy"]


class FullOptions(BaseModel):
    """Options of the ``full`` strategy (``strategy.options``)."""

    model_config = ConfigDict(extra="forbid")

    layer_decay: float | None = Field(
        None, gt=0, le=1, description="layer-wise lr decay per block, head down (e.g. 0.8); null: one lr"
    )


class FullStrategy(Strategy):
    """Fine-tune all parameters (parameter transfer), optionally with layer-wise lr decay."""

    options_model = FullOptions

    def apply(self, model: nn.Module, backbone: Backbone) -> nn.Module:
        opts = FullOptions.model_validate(self.options)
        self.layer_decay = opts.layer_decay
        if self.layer_decay is not None:
            self.blocks = blocks_of(backbone, model, "strategy.options.layer_decay")
        model.requires_grad_(True)
        return model

    def parameter_groups(self, model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        if self.layer_decay is None:
            return super().parameter_groups(model, weight_decay)
        return layerwise_groups(model, self.blocks, weight_decay, self.layer_decay, self.no_decay)
