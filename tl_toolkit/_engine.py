"""The training loop, on accelerate.

One loop for every backbone and strategy, on CPU, one GPU or many processes
(``accelerate launch``): accelerate places the model and batches, shards the
data, accumulates gradients and handles mixed precision; this module tells the
story of a run around it: train an epoch, evaluate, log, checkpoint.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._callbacks import EpochCallback, EpochEnd
from ._checkpoint import Checkpointer, TrainState, latest_checkpoint, write_atomic
from ._errors import UserError
from ._gradient_watch import GradientWatch
from ._trackers import tracker_config, tracker_values
from ._train_step import prepare_training

if TYPE_CHECKING:
    import datasets
    from accelerate import Accelerator
    from torch import nn

    from ._plugin_api import Backbone, Strategy
    from ._recipe import Recipe
    from ._task_api import TaskPlugin
    from ._transfer_lr import TransferRates

__all__ = ["FitResult", "evaluate", "fit", "make_accelerator"]

@dataclass
class FitResult:
    """What a finished training loop hands back."""

    model: nn.Module  # unwrapped, on the accelerator's device
    eval: dict[str, float]
    eval_outputs: dict[str, Any] = field(default_factory=dict)  # the task's details of the final evaluation
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    accelerator: Accelerator | None = None
    best_checkpoint: dict[str, Any] | None = None  # {"checkpoint", "metric", "value"} with train.best_metric
    soup: dict[str, Any] | None = None  # what train.soup averaged: {"kind", "ingredients", ...}


def make_accelerator(recipe: Recipe, log_with: list[str] | None = None) -> Accelerator:
    """An ``Accelerator`` for the recipe's precision and accumulation settings.

    ``log_with`` names accelerate trackers (``train.trackers``); those that keep
    local files write them under ``output_dir/trackers``.

    Raises:
        UserError: the mixed-precision mode is not available on this machine.
    """
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.state import AcceleratorState
    from accelerate.utils import GradientAccumulationPlugin, TorchDynamoPlugin

    # Several runs in one process (baselines, tests, notebooks) may ask for
    # different precisions: forget the previous run's state, keep the process group.
    AcceleratorState._reset_state()
    try:
        return Accelerator(
            # auto: the training step's own CPU autocast (_train_step), accelerate keeps full precision
            mixed_precision="no" if recipe.train.mixed_precision == "auto" else recipe.train.mixed_precision,
            # A plugin, not the plain argument: `accelerate launch` exports its own default
            # accumulation to the environment, and the recipe must win over it.
            gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=recipe.train.grad_accum_steps),
            step_scheduler_with_optimizer=True,
            dynamo_plugin=TorchDynamoPlugin(backend="inductor" if recipe.train.compile else "no"),
            # The shuffle order of epoch N depends on (seed, N) only, so a resumed run sees the same batches.
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=recipe.seed),
            log_with=log_with or None,
            project_dir=str(recipe.output_path / "trackers") if log_with else None,
        )
    except (ValueError, RuntimeError) as e:
        raise UserError(
            f"train.mixed_precision: {recipe.train.mixed_precision!r} is not available here ({e}); "
            f"use 'no' or 'bf16' on CPU"
        ) from None


def evaluate(
    model: nn.Module, loader: Any, backbone: Backbone, accelerator: Accelerator, task: TaskPlugin,
    outputs: dict[str, Any] | None = None,
) -> dict[str, float]:
    """The task's metrics and loss of ``model`` over ``loader``.

    ``outputs``, when given, receives the task's details of this evaluation
    (:meth:`TaskPlugin.details`: e.g. the labels and predictions behind a
    confusion matrix), so the report needs no second pass.
    """
    import torch

    model.eval()
    all_logits, labels, losses = [], [], []
    with torch.no_grad():
        for batch in loader:
            logits = backbone.forward(model, batch).float()
            batch_labels = batch["labels"]
            loss = task.loss(logits, batch_labels, reduction="none")
            if logits.ndim > 2 and accelerator.num_processes > 1:  # one score per token: lengths differ by process
                logits = accelerator.pad_across_processes(logits, dim=1)
                batch_labels = accelerator.pad_across_processes(batch_labels, dim=1, pad_index=-100)
            # gather_for_metrics drops the samples duplicated to even out the last batch across processes.
            logits, batch_labels, loss = accelerator.gather_for_metrics((logits, batch_labels, loss))
            all_logits.append(logits.cpu())
            labels.append(batch_labels.cpu())
            losses.append(loss.cpu())
    if outputs is not None:
        outputs.clear()
        outputs.update(task.details(all_logits, labels))
    metrics = task.metrics(all_logits, labels)
    metrics["loss"] = float(torch.cat(losses).mean()) if losses else 0.0
    return metrics


def fit(
    recipe: Recipe,
    backbone: Backbone,
    strategy: Strategy,
    model: nn.Module,
    train_ds: datasets.Dataset,
    eval_ds: datasets.Dataset,
    out_dir: Path,
    accelerator: Accelerator,
    resume: bool = False,
    quiet: bool = False,
    task: TaskPlugin | None = None,
    callbacks: Sequence[EpochCallback] = (),
    rates: TransferRates | None = None,
) -> FitResult:
    """Train ``model`` for ``recipe.train.epochs``, evaluating and checkpointing each epoch.

    With ``resume``, training continues from the newest checkpoint, inside an epoch when it was
    taken there (``train.checkpoint_every_steps``). ``task`` is the run's task plugin: its loss and
    metrics (default: the recipe's ``data.task``). ``callbacks`` hear every
    finished epoch (see :mod:`tl_toolkit._callbacks`). ``rates``: the transferred weights and the ratio
    of their learning rate to ``train.lr`` (:mod:`tl_toolkit._transfer_lr`).

    Raises:
        UserError: no trainable parameters, or a non-finite loss (unless ``train.skip_nonfinite``).
    """
    if task is None:
        from ._tasks import make_task

        task = make_task(recipe.data, recipe.train)

    cfg = recipe.train
    # The loaders, optimizer and scheduler, and the step that trains one batch (shared with tl plan).
    training = prepare_training(recipe, backbone, strategy, model, train_ds, eval_ds, accelerator, task, rates)
    model, scheduler = training.model, training.scheduler
    train_loader, eval_loader, train_step = training.train_loader, training.eval_loader, training.step

    ema = None
    if cfg.ema is not None:  # registered before resume(): the checkpoint restores the average too
        from ._ema import EmaWeights

        ema = EmaWeights(train_step.trainable, cfg.ema)
        accelerator.register_for_checkpointing(ema)
    checkpoints = Checkpointer(accelerator, out_dir / "checkpoints", cfg, task.metric_goals)
    state = (checkpoints.resume(quiet) if resume else None) or TrainState()
    metrics_file = out_dir / "metrics.jsonl"
    if accelerator.is_main_process:
        # Rewritten from the checkpoint's history so a resumed run's log matches an uninterrupted one.
        write_atomic(metrics_file, "".join(json.dumps(row) + "\n" for row in state.history))

    def log(row: dict[str, Any]) -> None:
        state.history.append(row)
        accelerator.log(tracker_values(row), step=row["step"])  # no-op without train.trackers
        if accelerator.is_main_process:
            with metrics_file.open("a") as f:
                f.write(json.dumps(row) + "\n")

    if accelerator.log_with:  # the trackers of train.trackers, filtered by accelerate
        accelerator.init_trackers(recipe.name, config=tracker_config(recipe))
    progress = _Progress(accelerator, quiet)
    watch = GradientWatch(accelerator.unwrap_model(model))
    # Adapters that get exactly zero gradient in the first steps are named (the watch ends by itself).
    train_step.on_gradients = lambda: _warn_stuck(accelerator, recipe, watch.after_backward(), quiet)
    outputs: dict[str, Any] = {}
    evaluated = False
    history = state.history
    eval_metrics: dict[str, float] = history[-1]["eval"] if history and "eval" in history[-1] else {}

    def epoch_end(epoch: int, metrics: dict[str, float], replayed: bool = False) -> None:
        event = EpochEnd(epoch, cfg.epochs, state.step, metrics, out_dir, replayed)
        for callback in callbacks:
            callback(event)

    if resume and state.epoch and not state.batch and eval_metrics:
        epoch_end(state.epoch, eval_metrics, replayed=True)
    for epoch in range(state.epoch, cfg.epochs):
        train_loader.set_epoch(epoch)
        strategy.on_epoch_start(accelerator.unwrap_model(model), epoch, cfg.epochs)
        # A mid-epoch checkpoint: the same shuffle of this epoch, without the batches already trained.
        loader = accelerator.skip_first_batches(train_loader, state.batch) if state.batch else train_loader
        model.train()
        strategy.train_mode(accelerator.unwrap_model(model))
        backbone.train_mode(accelerator.unwrap_model(model))
        started = epoch_started = time.perf_counter()
        progress.start(epoch, cfg.epochs, len(train_loader), accelerator.num_processes)
        for batch in loader:
            value, finite = train_step(batch)
            if ema is not None and finite and accelerator.sync_gradients:
                ema.update()  # after the optimizer step the train step just took
            state.batch += 1
            if finite:
                state.window_loss, state.window_batches = state.window_loss + value, state.window_batches + 1
                state.epoch_loss, state.epoch_batches = state.epoch_loss + value, state.epoch_batches + 1
                progress.advance(value, scheduler.get_last_lr()[0], len(batch["labels"]))
            else:
                _on_nonfinite(accelerator, cfg, value, state, checkpoints.root)
            if accelerator.sync_gradients:
                state.step += 1
                if state.step % cfg.log_every_steps == 0 and state.window_batches:
                    log({"kind": "train", "step": state.step,
                         "epoch": round(epoch + state.batch / len(train_loader), 4),
                         "train_loss": state.window_loss / state.window_batches, "lr": scheduler.get_last_lr()[0],
                         "train_seconds": round(state.train_seconds + time.perf_counter() - started, 4)})
                    state.window_loss, state.window_batches = 0.0, 0
                every = cfg.checkpoint_every_steps
                if every and state.step % every == 0 and state.batch < len(train_loader):
                    state.train_seconds += time.perf_counter() - started
                    checkpoints.save(state)
                    started = time.perf_counter()
        state.train_seconds += time.perf_counter() - started
        with ema.applied() if ema is not None else nullcontext():
            eval_metrics = evaluate(model, eval_loader, backbone, accelerator, task, outputs)
        evaluated = True
        if not math.isfinite(eval_metrics.get("loss", 0.0)):  # before its checkpoint: the last good one stays newest
            _on_nonfinite_eval(cfg, eval_metrics["loss"], epoch + 1, checkpoints.root)
        epoch_train_loss = state.epoch_loss / max(state.epoch_batches, 1)
        log({"kind": "eval", "step": state.step, "epoch": epoch + 1, "train_loss": epoch_train_loss,
             "eval": eval_metrics, "seconds": round(time.perf_counter() - epoch_started, 3)})
        progress.finish(eval_metrics, epoch_train_loss)
        state.epoch, state.batch, state.epoch_loss, state.epoch_batches = epoch + 1, 0, 0.0, 0
        checkpoints.save(state, eval_metrics)
        epoch_end(epoch + 1, eval_metrics)
    if ema is not None:  # the average is the model the run evaluates and saves
        ema.copy_to_params()
    soup = None
    if cfg.soup is not None:  # the average of the kept epoch checkpoints becomes the model
        from ._soup import make_soup

        soup = make_soup(accelerator.unwrap_model(model), checkpoints.root, cfg.soup,
                         lambda: evaluate(model, eval_loader, backbone, accelerator, task),
                         cfg.best_metric or "accuracy",
                         {row["epoch"]: row["eval"] for row in history if row["kind"] == "eval"})
        evaluated = False
    if not evaluated:  # resumed a run whose every epoch was done, or a soup replaced the weights
        eval_metrics = evaluate(model, eval_loader, backbone, accelerator, task, outputs)
    for tracker in accelerator.trackers:  # not end_training(): it also ends the process group the pipeline still uses
        tracker.finish()
    accelerator.wait_for_everyone()
    return FitResult(accelerator.unwrap_model(model), eval_metrics, outputs, history, state.train_seconds,
                     accelerator, best_checkpoint=state.best, soup=soup)


def _warn_stuck(accelerator: Accelerator, recipe: Recipe, warning: str | None, quiet: bool) -> None:
    """A strategy's weights that get no gradient: printed, or for a quiet run a Python warning (filterable)."""
    if warning and accelerator.is_main_process:
        text = f"{recipe.name}: warning: strategy {recipe.strategy.plugin!r}: {warning}"
        if quiet:
            warnings.warn(text, UserWarning, stacklevel=2)
        else:
            print(text, file=sys.stderr, flush=True)


def _on_nonfinite(accelerator: Accelerator, cfg: Any, value: float, state: TrainState, root: Path) -> None:
    """Skip the step (``train.skip_nonfinite``), or stop with the step named and the last good checkpoint kept."""
    where = f"step {state.step + 1} (epoch {state.epoch + 1}, batch {state.batch})"
    if cfg.skip_nonfinite:
        state.skipped_steps += 1
        accelerator.print(f"train: the loss is {value} at {where}; skipped that step (train.skip_nonfinite)")
        return
    raise UserError(
        f"train: the loss became {value} at {where}; stopped, {_kept(root)}. Lower train.lr (now {cfg.lr}), "
        f"set train.max_grad_norm, or set train.skip_nonfinite=true to skip such steps"
    )


def _kept(root: Path) -> str:
    """What a run stopped for a non-finite loss leaves to resume from."""
    last = latest_checkpoint(root)
    return f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"


def _on_nonfinite_eval(cfg: Any, value: float, epoch: int, root: Path) -> None:
    """A model whose held-out loss is not a number diverged, although its training losses were finite."""
    raise UserError(f"train: the eval loss is {value} after epoch {epoch}: the model diverged; stopped, {_kept(root)}. "
                    f"Lower train.lr (now {cfg.lr:g})")


class _Progress:
    """A rich progress bar per epoch on the main process of an interactive terminal; one line per epoch otherwise.

    The bar shows the running loss, learning rate, samples/s and ETA. It is
    transient: once an epoch ends it gives way to the same one-line summary a
    log file gets, so logs never hold half-drawn bars.
    """

    def __init__(self, accelerator: Accelerator, quiet: bool) -> None:
        self.accelerator = accelerator
        self.quiet = quiet or not accelerator.is_main_process
        self.live = not self.quiet and sys.stderr.isatty()
        self._bar: Any = None

    def start(self, epoch: int, epochs: int, batches: int, processes: int = 1) -> None:
        self.epoch, self.epochs, self.t0 = epoch, epochs, time.perf_counter()
        self.samples, self.processes, self.rate = 0, processes, 0.0
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn(f"epoch {epoch + 1}/{epochs}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  {task.fields[rate]:.1f} samples/s"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(file=sys.stderr), transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("train", total=batches, loss=0.0, lr=0.0, rate=0.0)

    def advance(self, loss: float, lr: float, batch_size: int) -> None:
        self.samples += batch_size * self.processes  # every process trains a batch of this size
        self.rate = self.samples / max(time.perf_counter() - self.t0, 1e-9)  # training only, eval excluded
        if self._bar is not None:
            self._bar.update(self._task, advance=1, loss=loss, lr=lr, rate=self.rate)

    def finish(self, metrics: dict[str, float], train_loss: float) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if not self.quiet:
            secs = time.perf_counter() - self.t0
            scores = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "loss")
            print(
                f"epoch {self.epoch + 1}/{self.epochs}: train_loss {train_loss:.4f}  "
                f"eval_loss {metrics['loss']:.4f}  {scores}  ({secs:.1f}s, {self.rate:.1f} samples/s)",
                file=sys.stderr,
                flush=True,
            )
