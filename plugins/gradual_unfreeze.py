"""``gradual-unfreeze``: the head first, then one more backbone block per epoch, top down (ULMFiT).

Howard & Ruder (2018): fine-tuning every layer at once can wipe out what the
lower layers know; unfreezing from the top, one block per epoch, lets the
upper layers adapt before the general ones move. Every parameter is in the
optimizer from the start (AdamW skips those without gradients), so any
``train.scheduler`` works across the phases, and a resumed run picks up the
phase of its epoch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tl_toolkit import Backbone, Strategy, blocks_of, train_only

if TYPE_CHECKING:
    from torch import nn

__all__ = ["GradualUnfreezeOptions", "GradualUnfreezeStrategy"]


class GradualUnfreezeOptions(BaseModel):
    """Options of the ``gradual-unfreeze`` strategy (``strategy.options``)."""

    model_config = ConfigDict(extra="forbid")

    blocks_per_epoch: int = Field(1, ge=1, description="backbone blocks unfrozen at the start of each epoch")


class GradualUnfreezeStrategy(Strategy):
    """Epoch 1 trains the head; each later epoch also unfreezes the next block down (ULMFiT)."""

    options_model = GradualUnfreezeOptions

    def apply(self, model: nn.Module, backbone: Backbone) -> nn.Module:
        self.per_epoch = GradualUnfreezeOptions.model_validate(self.options).blocks_per_epoch
        self.heads = backbone.head_names(model)
        self.blocks = blocks_of(backbone, model, "strategy.plugin")
        model.requires_grad_(True)  # all of it trains in the end: the optimizer holds every parameter
        self.training = list(self.heads)
        return model

    def unfrozen(self, epoch: int) -> list[str]:
        """The modules that train in (0-based) ``epoch``: the head and the top ``epoch * blocks_per_epoch`` blocks."""
        count = min(epoch * self.per_epoch, len(self.blocks))
        return [*self.heads, *self.blocks[len(self.blocks) - count:]]

    def on_epoch_start(self, model: nn.Module, epoch: int, epochs: int) -> None:
        self.training = self.unfrozen(epoch)

    def train_mode(self, model: nn.Module) -> None:
        if len(self.training) == len(self.heads) + len(self.blocks):
            model.requires_grad_(True)  # everything, including what lies outside the listed blocks
            return
        train_only(model, self.training)
