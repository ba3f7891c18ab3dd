"""``head-only``: feature transfer, a new head on the frozen pretrained features."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tl_toolkit import Backbone, Strategy

if TYPE_CHECKING:
    from torch import nn

__all__ = ["HeadOnlyStrategy"]


class HeadOnlyStrategy(Strategy):
    """Freeze the backbone and train only the classification head (feature transfer)."""

    def apply(self, model: nn.Module, backbone: Backbone) -> nn.Module:
        self.heads = backbone.head_names(model)
        model.requires_grad_(False)
        for name in self.heads:
            model.get_submodule(name).requires_grad_(True)
        return model

    def train_mode(self, model: nn.Module) -> None:
        # The frozen backbone is a fixed feature extractor: BatchNorm keeps the
        # source statistics and dropout stays off; only the head is in training mode.
        model.eval()
        for name in self.heads:
            model.get_submodule(name).train()
