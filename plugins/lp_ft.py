"""``lp-ft``: a linear probe first, then full fine-tuning from the probed head (Kumar et al., 2022).

Fine-tuning with a randomly initialised head sends large, noisy gradients
into the pretrained features and distorts them; probing first (only the head
trains, on frozen features) gives fine-tuning a head that already fits, and
the features then move less. The probe phase lasts ``probe_epochs`` of
``train.epochs``; the backbone stays in eval mode during it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tl_toolkit import Backbone, Strategy, train_only

if TYPE_CHECKING:
    from torch import nn

__all__ = ["LpFtOptions", "LpFtStrategy"]


class LpFtOptions(BaseModel):
    """Options of the ``lp-ft`` strategy (``strategy.options``)."""

    model_config = ConfigDict(extra="forbid")

    probe_epochs: int = Field(1, ge=1, description="epochs of linear probing (head only) before full fine-tuning")


class LpFtStrategy(Strategy):
    """A linear probe for the first probe_epochs, then fine-tune everything from the probed head."""

    options_model = LpFtOptions

    def apply(self, model: nn.Module, backbone: Backbone) -> nn.Module:
        self.probe_epochs = LpFtOptions.model_validate(self.options).probe_epochs
        self.heads = backbone.head_names(model)
        self.probing = True
        model.requires_grad_(True)  # the optimizer holds every parameter; the probe phase freezes the body
        return model

    def on_epoch_start(self, model: nn.Module, epoch: int, epochs: int) -> None:
        self.probing = epoch < self.probe_epochs

    def train_mode(self, model: nn.Module) -> None:
        if self.probing:
            train_only(model, self.heads)
        else:
            model.requires_grad_(True)
