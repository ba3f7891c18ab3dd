"""What a run tells its listeners at the end of every epoch.

``finetune(..., callbacks=[fn])`` calls ``fn(EpochEnd(...))`` once the epoch's
evaluation and checkpoint are done. A callback may raise to stop the run there
(``tl sweep`` stops pruned trials this way); the checkpoint it leaves lets
``--resume`` continue. A run resumed at an epoch's end hears that epoch again,
so a decision lost to a crash between the checkpoint and the listener is taken
again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EpochCallback", "EpochEnd"]


@dataclass(frozen=True)
class EpochEnd:
    """One finished epoch of a run."""

    epoch: int  # 1-based number of the epoch just finished
    epochs: int  # train.epochs
    step: int  # optimizer steps so far
    eval: dict[str, float]  # the epoch's held-out metrics, as in metrics.jsonl
    output_dir: Path  # the run's output directory
    replayed: bool = False  # True when a resumed run repeats its last finished epoch


EpochCallback = Callable[[EpochEnd], None]
