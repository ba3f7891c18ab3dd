"""Checkpoints for ``tl run --resume``: written atomically, found by their state file.

A checkpoint is accelerate's ``save_state`` (model, optimizer, scheduler, the
RNG states of every process, the seedable sampler) plus ``trainer_state.json``,
which records where the loop stood: epochs done, batches of the current epoch
already trained, the step counter and the logged history. It is written into a
hidden temporary folder and renamed into place, and the state file is written
last, so a kill at any moment leaves the previous checkpoint whole and the half
written one invisible.

Checkpoints are taken at the end of every epoch and, with
``train.checkpoint_every_steps``, inside epochs too; the newest
``train.keep_checkpoints`` are kept, plus the best epoch checkpoint by
``train.best_metric`` when one is set.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import UserError

if TYPE_CHECKING:
    from accelerate import Accelerator

    from ._recipe import TrainConfig

__all__ = ["STATE_FILE", "Checkpointer", "TrainState", "latest_checkpoint", "resume_changes", "write_atomic"]

STATE_FILE = "trainer_state.json"


@dataclass
class TrainState:
    """Where the training loop stands; everything a resumed run needs besides accelerate's state."""

    epoch: int = 0  # epochs finished
    batch: int = 0  # batches of epoch `epoch` already trained (0 at an epoch boundary)
    step: int = 0  # optimizer steps taken (skipped non-finite steps included)
    history: list[dict[str, Any]] = field(default_factory=list)  # the rows of metrics.jsonl
    train_seconds: float = 0.0
    window_loss: float = 0.0  # loss sum and batch count since the last `train` row
    window_batches: int = 0
    epoch_loss: float = 0.0  # loss sum and batch count of the current epoch
    epoch_batches: int = 0
    skipped_steps: int = 0  # non-finite steps skipped (train.skip_nonfinite)
    best: dict[str, Any] | None = None  # {"checkpoint", "metric", "value"} of the best epoch so far

    @classmethod
    def read(cls, directory: Path) -> TrainState:
        return cls(**json.loads((directory / STATE_FILE).read_text()))


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary sibling, then rename it over ``path``: readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except BaseException as e:  # a full disk: neither a cut-short file nor the temporary one stays
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename == str(tmp):  # the user's file is the one to name
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


#: Keys a resumed run may change: more epochs, and the sections that only other runs read.
RESUMABLE_CHANGES = ("train.epochs", "baselines", "compare", "sweep")


def resume_changes(saved: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """The recipe keys (dotted, ``then -> now``) on which a run resumed with ``now`` differs from ``saved``.

    The checkpoint holds a model, an optimizer and data order made with ``saved``; other
    labels, architecture or strategy would not load into it, or would not continue it.
    """
    changes = []
    for key in sorted(set(saved) | set(now)):
        dotted, a, b = f"{prefix}{key}", saved.get(key), now.get(key)
        if dotted in RESUMABLE_CHANGES or a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            changes += resume_changes(a, b, f"{dotted}.")
        else:
            changes.append(f"{dotted} {json.dumps(a)} -> {json.dumps(b)}")
    return changes


def _checkpoints(root: Path) -> list[tuple[TrainState, Path]]:
    """Complete checkpoints under ``root``, oldest first (a folder without its state file is not one)."""
    found = []
    for path in root.glob("[!.]*"):
        if (path / STATE_FILE).is_file():
            state = TrainState.read(path)
            found.append((state, path))
    return sorted(found, key=lambda sp: (sp[0].epoch, sp[0].batch))


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under ``root``, or None."""
    found = _checkpoints(root)
    return found[-1][1] if found else None


def _better(metric: str, value: float, best: float, goals: dict[str, str] | None = None) -> bool:
    # Losses fall as a model improves; other metrics rise unless the task says they fall (mse).
    lower = (goals or {}).get(metric) == "min" or metric.endswith("loss")
    return value < best if lower else value > best


class Checkpointer:
    """Saves, finds, loads and prunes the checkpoints of one run."""

    def __init__(self, accelerator: Accelerator, root: Path, cfg: TrainConfig,
                 goals: dict[str, str] | None = None) -> None:
        self.accelerator, self.root, self.cfg = accelerator, root, cfg
        self.goals = goals or {}  # metric -> "max" | "min", from the task plugin

    def resume(self, quiet: bool = False) -> TrainState | None:
        """Load the newest checkpoint into the prepared objects (said unless ``quiet``); None when there is none."""
        latest = latest_checkpoint(self.root)
        if latest is None:
            return None
        self.accelerator.load_state(str(latest))
        state = TrainState.read(latest)
        where = f"epoch {state.epoch + 1}, batch {state.batch}" if state.batch else f"epoch {state.epoch} done"
        if not quiet:
            self.accelerator.print(f"Resuming from {latest} ({where} of {self.cfg.epochs}, step {state.step})")
        return state

    def save(self, state: TrainState, eval_metrics: dict[str, float] | None = None) -> Path:
        """Write a checkpoint of ``state``: ``epoch-N`` at an epoch's end, ``step-N`` inside one."""
        name = f"step-{state.step}" if state.batch else f"epoch-{state.epoch}"
        if eval_metrics is not None:
            self._track_best(state, name, eval_metrics)
        final, tmp = self.root / name, self.root / f".{name}.tmp"
        acc = self.accelerator
        if acc.is_main_process:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()  # every process writes its RNG state into tmp
        try:
            acc.save_state(str(tmp))
            acc.wait_for_everyone()
            if acc.is_main_process:
                (tmp / STATE_FILE).write_text(json.dumps(asdict(state)))  # last: it marks the checkpoint complete
        except BaseException:  # a full disk, Ctrl-C: no half-written checkpoint stays behind
            if acc.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        if acc.is_main_process:
            if final.exists():  # only after --overwrite left a folder of that name; never the newest complete one
                shutil.rmtree(final)
            tmp.rename(final)
            self._prune(state)
        acc.wait_for_everyone()
        return final

    def _track_best(self, state: TrainState, name: str, metrics: dict[str, float]) -> None:
        metric = self.cfg.best_metric
        if metric is None:
            return
        if metric not in metrics:
            raise UserError(
                f"train.best_metric: the evaluation reports no metric {metric!r}; "
                f"choose one of {', '.join(sorted(metrics))}"
            )
        value = float(metrics[metric])
        if state.best is None or _better(metric, value, state.best["value"], self.goals):
            state.best = {"checkpoint": name, "metric": metric, "value": value}

    def _prune(self, state: TrainState) -> None:
        """Keep the newest ``keep_checkpoints`` and the best; drop the rest and leftovers of killed saves."""
        for leftover in self.root.glob(".*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)
        keep_best = state.best["checkpoint"] if state.best else None
        found = [path for _, path in _checkpoints(self.root)]
        for path in found[: -self.cfg.keep_checkpoints]:
            if path.name != keep_best:
                # Renamed first: a kill during the removal leaves a hidden leftover, not a broken checkpoint.
                doomed = path.with_name(f".{path.name}.old.tmp")
                path.rename(doomed)
                shutil.rmtree(doomed, ignore_errors=True)
