"""The learning rate of transferred weights relative to the head's (``train.backbone_lr_ratio``).

A run whose backbone starts from trained weights (``backbone.init_from``,
``backbone.weights`` or ``pretrained: true``) trains those weights at
``train.lr * train.backbone_lr_ratio`` and everything the run adds (the fresh
head, adapters) at ``train.lr``; a backbone from random weights (the scratch
baseline) trains at ``train.lr``. The default ratio is 1: on the issue-23 proxy
(a CIFAR-10 source at 32 px, other classes at 64 px; ``bench/vision_shift.py``) a
ResNet-18 backbone at 0.1 times the head's rate lost 10.4 points over three seeds
to the same run at one rate (0.5 times: 1.9 points), because a change of image
size needs the first layers to adapt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._layers import in_head

if TYPE_CHECKING:
    from torch import nn

    from ._plugin_api import Backbone
    from ._recipe import Recipe

__all__ = ["TransferRates", "scale_transferred", "transfer_rates"]


@dataclass(frozen=True)
class TransferRates:
    """Which parameters came with the starting weights, and the rate ratio they train at."""

    ratio: float = 1.0  # learning rate of the transferred weights / train.lr
    params: frozenset[int] = field(default_factory=frozenset)  # id() of each transferred parameter

    @property
    def active(self) -> bool:
        return bool(self.params) and self.ratio != 1.0


def transfer_rates(recipe: Recipe, backbone: Backbone, model: nn.Module, transferred: bool) -> TransferRates:
    """The :class:`TransferRates` of a freshly built ``model`` (before the strategy wraps it).

    ``transferred``: whether the backbone's weights came from a source run, a file or a
    checkpoint. Every parameter outside the backbone's head counts as transferred: peft keeps
    these very tensors when it wraps the model, and the adapters it adds are new ones.
    """
    if not transferred:
        return TransferRates()
    ratio = recipe.train.backbone_lr_ratio
    heads = tuple(backbone.head_names(model))
    ids = frozenset(id(param) for name, param in model.named_parameters() if not in_head(name, heads))
    return TransferRates(float(ratio), ids)


def scale_transferred(groups: list[dict[str, Any]], rates: TransferRates) -> list[dict[str, Any]]:
    """``groups`` with each one split in two: its transferred parameters get ``lr_scale`` times ``rates.ratio``."""
    if not rates.active:
        return groups
    out = []
    for group in groups:
        moved = [p for p in group["params"] if id(p) in rates.params]
        kept = [p for p in group["params"] if id(p) not in rates.params]
        scale = group.get("lr_scale", 1.0)
        if kept:
            out.append({**group, "params": kept})
        if moved:
            out.append({**group, "params": moved, "lr_scale": scale * rates.ratio})
    return out
