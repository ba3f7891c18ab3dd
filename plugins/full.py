"""``full``: parameter transfer, every weight of the pretrained model trains."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from tl_toolkit import Backbone, Strategy

if TYPE_CHECKING:
    from torch import nn

__all__ = ["FullStrategy", "NoOptions"]


class NoOptions(BaseModel):
    """Options of a strategy that takes none: any key in ``strategy.options`` is a mistake worth reporting."""

    model_config = ConfigDict(extra="forbid")


class FullStrategy(Strategy):
    """Fine-tune all parameters (parameter transfer)."""

    options_model = NoOptions

    def apply(self, model: nn.Module, backbone: Backbone) -> nn.Module:
        model.requires_grad_(True)
        return model
