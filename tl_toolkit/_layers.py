"""Helpers for strategies that treat a backbone as a stack of blocks.

``Backbone.block_names`` lists a model's blocks, input side first. Layer-wise
learning-rate decay gives block ``i`` of ``n`` the rate ``lr * decay**(n - i)``
(the head keeps ``lr``), so the general features near the input move least;
gradual unfreezing and probe-then-fine-tune train a chosen subset of modules
and keep the rest frozen, in eval mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import nn

    from ._plugin_api import Backbone

__all__ = ["block_index", "blocks_of", "in_head", "layerwise_groups", "train_only"]


def blocks_of(backbone: Backbone, model: nn.Module, key: str) -> list[str]:
    """``backbone.block_names(model)``, or a UserError naming the recipe ``key`` that needs them.

    Raises:
        UserError: the backbone does not implement ``block_names`` for this model.
    """
    try:
        return backbone.block_names(model)
    except NotImplementedError:
        raise UserError(f"{key}: backbone {backbone.describe()} does not list its blocks "
                        f"(Backbone.block_names); remove the option") from None


def block_index(param_name: str, blocks: list[str]) -> int | None:
    """The index of the block holding ``param_name``, or None (head, or outside every block).

    Matching is by dotted components, so a name wrapped by peft
    (``base_model.model.bert.encoder.layer.3...``) still finds its block.
    """
    dotted = f".{param_name}"
    for i, block in enumerate(blocks):
        if f".{block}." in dotted:
            return i
    return None


def in_head(param_name: str, heads: tuple[str, ...] | list[str]) -> bool:
    """Whether ``param_name`` lies in one of the modules ``heads`` (``Backbone.head_names``), peft-wrapped or not."""
    dotted = f".{param_name}."
    return any(f".{head}." in dotted for head in heads)


def layerwise_groups(
    model: nn.Module, blocks: list[str], weight_decay: float, decay: float,
    no_decay: Callable[[str, Any], bool] | None = None,
) -> list[dict[str, Any]]:
    """Optimizer groups over the trainable parameters with ``lr_scale = decay ** (len(blocks) - i)`` for block ``i``.

    Parameters outside every block (the head) keep the full rate. As in the
    default groups, biases and normalisation parameters get no weight decay;
    ``no_decay(name, param)`` (a strategy's :meth:`~tl_toolkit.Strategy.no_decay`) decides instead when given.
    """
    groups: dict[tuple[float, bool], list[Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        index = block_index(name, blocks)
        scale = 1.0 if index is None else decay ** (len(blocks) - index)
        decays = not no_decay(name, param) if no_decay else param.ndim >= 2
        groups.setdefault((scale, decays), []).append(param)
    return [
        {"params": params, "weight_decay": weight_decay if decays else 0.0, "lr_scale": scale}
        for (scale, decays), params in sorted(groups.items(), key=lambda item: item[0])
    ]


def train_only(model: nn.Module, prefixes: list[str]) -> None:
    """Only the modules named in ``prefixes`` train; the others are frozen and in eval mode.

    Eval mode keeps frozen BatchNorm statistics and switches their dropout
    off, as ``head-only`` does. Call it after ``model.train()``.
    """
    model.requires_grad_(False)
    model.eval()
    for name in prefixes:
        module = model.get_submodule(name)
        module.requires_grad_(True)
        module.train()
