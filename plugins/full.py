"""``full``: parameter transfer, every weight of the pretrained model trains."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tl_toolkit import Backbone, Strategy

if TYPE_CHECKING:
    from torch import nn

__all__ = ["FullStrategy"]


class FullStrategy(Strategy):
    """Fine-tune all parameters (parameter transfer)."""

    def apply(self, model: nn.Module, backbone: Backbone) -> nn.Module:
        model.requires_grad_(True)
        return model
