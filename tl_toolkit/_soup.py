"""``train.soup``: the saved model is an average of the run's kept epoch checkpoints (a model soup).

- ``uniform``: the mean of every kept epoch checkpoint.
- ``greedy``: checkpoints sorted by their eval metric, best first; each joins the
  soup only if the soup's metric does not drop with it.

The ingredients are the model weights accelerate wrote into each ``epoch-N``
checkpoint (``train.keep_checkpoints`` of them). Averaging is done on the
trainable and floating-point tensors alike (BatchNorm statistics too); integer
buffers come from the newest checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._checkpoint import TrainState
from ._errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["make_soup"]


def _ingredients(root: Path) -> list[tuple[str, int, Path]]:
    """The kept epoch checkpoints: (name, epoch, weights file), oldest first."""
    found = []
    for path in root.glob("epoch-*"):
        weights = next(iter(sorted(path.glob("model*.safetensors"))), None)
        if weights is not None and (path / "trainer_state.json").is_file():
            found.append((path.name, TrainState.read(path).epoch, weights))
    return sorted(found, key=lambda item: item[1])


def _mean(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    import torch

    out = {}
    for key, newest in states[-1].items():
        if newest.is_floating_point():
            out[key] = torch.stack([s[key].float() for s in states]).mean(0).to(newest.dtype)
        else:
            out[key] = newest
    return out


def make_soup(
    model: nn.Module, root: Path, kind: str, evaluate: Callable[[], dict[str, float]], metric: str,
    epoch_metrics: dict[int, dict[str, float]],
) -> dict[str, Any]:
    """Load the soup of the checkpoints under ``root`` into ``model``; return what went into it.

    Args:
        model: the unwrapped model whose ``state_dict`` keys the checkpoints hold.
        kind: ``uniform`` or ``greedy``.
        evaluate: the eval metrics of ``model`` as it stands (greedy tries each candidate soup).
        metric: the metric greedy keeps from dropping (``train.best_metric``, or accuracy).
        epoch_metrics: each epoch's eval metrics, from the run's history (greedy's order).

    Raises:
        UserError: fewer than two epoch checkpoints were kept.
    """
    from safetensors.torch import load_file

    found = _ingredients(root)
    if len(found) < 2:
        raise UserError(
            f"train.soup: needs at least two kept epoch checkpoints, found {len(found)}; set "
            f"train.keep_checkpoints to 2 or more (and train.epochs at least as high)"
        )
    states = {name: load_file(str(weights)) for name, _, weights in found}

    def load(names: list[str]) -> None:
        model.load_state_dict(_mean([states[n] for n in names]), strict=False)

    lower_is_better = metric.endswith("loss")
    if kind == "uniform":
        chosen = [name for name, _, _ in found]
        load(chosen)
        return {"kind": kind, "ingredients": chosen, "candidates": chosen}
    ranked = sorted(found, key=lambda item: epoch_metrics.get(item[1], {}).get(metric, 0.0),
                    reverse=not lower_is_better)
    chosen = [ranked[0][0]]
    load(chosen)
    best = evaluate()[metric]
    tried = [{"add": ranked[0][0], metric: best, "kept": True}]
    for name, _, _ in ranked[1:]:
        load([*chosen, name])
        value = evaluate()[metric]
        kept = value <= best if lower_is_better else value >= best
        tried.append({"add": name, metric: value, "kept": kept})
        if kept:
            chosen, best = [*chosen, name], value
    load(chosen)
    return {"kind": kind, "metric": metric, "ingredients": chosen, "candidates": [n for n, _, _ in found],
            "steps": tried}
