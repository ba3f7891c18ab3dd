"""``head-only``: feature transfer, a new head on the frozen pretrained features."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from tl_toolkit import Backbone, Strategy

if TYPE_CHECKING:
    from torch import nn

__all__ = ["HeadOnlyOptions", "HeadOnlyStrategy"]


class HeadOnlyOptions(BaseModel):
    """``head-only`` takes no options: the head trains with the train section's settings."""

    model_config = ConfigDict(extra="forbid")


class HeadOnlyStrategy(Strategy):
    """Freeze the backbone and train only the classification head (feature transfer)."""

    options_model = HeadOnlyOptions

    frozen_backbone = True  # its features never change: train.feature_cache computes them once

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
