"""The training loop, on accelerate.

One loop for every backbone and strategy, on CPU, one GPU or many processes
(``accelerate launch``): accelerate places the model and batches, shards the
data, accumulates gradients and handles mixed precision; this module tells the
story of a run around it: train an epoch, evaluate, log, checkpoint.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import UserError

if TYPE_CHECKING:
    import datasets
    from accelerate import Accelerator
    from torch import nn

    from ._plugin_api import Backbone, Strategy
    from ._recipe import Recipe

__all__ = ["FitResult", "evaluate", "fit", "make_accelerator"]

_STATE_FILE = "trainer_state.json"


@dataclass
class FitResult:
    """What a finished training loop hands back."""

    model: nn.Module  # unwrapped, on the accelerator's device
    eval: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    accelerator: Accelerator | None = None


def make_accelerator(recipe: Recipe, log_with: list[str] | None = None) -> Accelerator:
    """An ``Accelerator`` for the recipe's precision and accumulation settings.

    Raises:
        UserError: the mixed-precision mode is not available on this machine.
    """
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.state import AcceleratorState
    from accelerate.utils import GradientAccumulationPlugin

    # Several runs in one process (baselines, tests, notebooks) may ask for
    # different precisions: forget the previous run's state, keep the process group.
    AcceleratorState._reset_state()
    try:
        return Accelerator(
            mixed_precision=recipe.train.mixed_precision,
            # A plugin, not the plain argument: `accelerate launch` exports its own default
            # accumulation to the environment, and the recipe must win over it.
            gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=recipe.train.grad_accum_steps),
            step_scheduler_with_optimizer=True,
            # The shuffle order of epoch N depends on (seed, N) only, so a resumed run sees the same batches.
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=recipe.seed),
        )
    except (ValueError, RuntimeError) as e:
        raise UserError(
            f"train.mixed_precision: {recipe.train.mixed_precision!r} is not available here ({e}); "
            f"use 'no' or 'bf16' on CPU"
        ) from None


def _loader(ds: datasets.Dataset, backbone: Backbone, batch_size: int, shuffle: bool, recipe: Recipe):
    import torch
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(recipe.seed)
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=backbone.collate,
        num_workers=recipe.train.num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=recipe.train.num_workers > 0,
        generator=generator if shuffle else None,
    )


def evaluate(model: nn.Module, loader: Any, backbone: Backbone, accelerator: Accelerator) -> dict[str, float]:
    """Loss, accuracy and macro-F1 of ``model`` over ``loader``."""
    import torch
    import torch.nn.functional as F

    from ._metrics import classification_metrics

    model.eval()
    preds, labels, losses = [], [], []
    with torch.no_grad():
        for batch in loader:
            logits = backbone.forward(model, batch).float()
            loss = F.cross_entropy(logits, batch["labels"], reduction="none")
            # gather_for_metrics drops the samples duplicated to even out the last batch across processes.
            logits, batch_labels, loss = accelerator.gather_for_metrics((logits, batch["labels"], loss))
            preds.append(logits.argmax(-1).cpu())
            labels.append(batch_labels.cpu())
            losses.append(loss.cpu())
    metrics = classification_metrics(torch.cat(labels).tolist(), torch.cat(preds).tolist())
    metrics["loss"] = float(torch.cat(losses).mean())
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
) -> FitResult:
    """Train ``model`` for ``recipe.train.epochs``, evaluating and checkpointing each epoch."""
    import torch
    import torch.nn.functional as F
    from transformers import get_scheduler

    cfg = recipe.train
    train_loader = _loader(train_ds, backbone, cfg.batch_size, True, recipe)
    eval_loader = _loader(eval_ds, backbone, cfg.eval_batch_size or 2 * cfg.batch_size, False, recipe)
    optimizer = torch.optim.AdamW(strategy.parameter_groups(model, cfg.weight_decay), lr=cfg.lr)
    if not optimizer.param_groups:
        raise UserError(f"strategy.plugin: {recipe.strategy.plugin!r} left no trainable parameters")

    model, optimizer, train_loader, eval_loader = accelerator.prepare(model, optimizer, train_loader, eval_loader)
    steps_per_epoch = math.ceil(len(train_loader) / cfg.grad_accum_steps)
    total_steps = steps_per_epoch * cfg.epochs
    # The prepared scheduler steps once per process for each optimizer step, as accelerate's examples do.
    scheduler = get_scheduler(
        cfg.scheduler,
        optimizer,
        num_warmup_steps=int(cfg.warmup_ratio * total_steps) * accelerator.num_processes,
        num_training_steps=total_steps * accelerator.num_processes,
    )
    scheduler = accelerator.prepare(scheduler)
    trainable = [p for p in model.parameters() if p.requires_grad]

    ckpt_root = out_dir / "checkpoints"
    history: list[dict[str, Any]] = []
    start_epoch, step, train_seconds = 0, 0, 0.0
    if resume:
        latest = latest_checkpoint(ckpt_root)
        if latest is not None:
            accelerator.load_state(str(latest))
            state = json.loads((latest / _STATE_FILE).read_text())
            start_epoch, step = state["epoch"], state["step"]
            history, train_seconds = state["history"], state["train_seconds"]
            accelerator.print(f"Resuming from {latest} (epoch {start_epoch} of {cfg.epochs} done)")
    metrics_file = out_dir / "metrics.jsonl"
    if accelerator.is_main_process:
        # Rewritten from the checkpoint's history so a resumed run's log matches an uninterrupted one.
        metrics_file.write_text("".join(json.dumps(row) + "\n" for row in history))

    def log(row: dict[str, Any]) -> None:
        history.append(row)
        if accelerator.is_main_process:
            with metrics_file.open("a") as f:
                f.write(json.dumps(row) + "\n")

    progress = _Progress(accelerator, quiet)
    eval_metrics: dict[str, float] = history[-1]["eval"] if history and "eval" in history[-1] else {}
    for epoch in range(start_epoch, cfg.epochs):
        train_loader.set_epoch(epoch)
        model.train()
        strategy.train_mode(accelerator.unwrap_model(model))
        backbone.train_mode(accelerator.unwrap_model(model))
        started = time.perf_counter()
        running, seen, epoch_loss, epoch_batches = 0.0, 0, 0.0, 0
        progress.start(epoch, cfg.epochs, len(train_loader))
        for batch in train_loader:
            with accelerator.accumulate(model):
                batch = backbone.train_batch(batch)  # batch-level augmentation; labels may turn soft
                logits = backbone.forward(model, batch)
                loss = F.cross_entropy(logits.float(), batch["labels"], label_smoothing=cfg.label_smoothing)
                extra = strategy.extra_loss(model, batch, logits)
                if extra is not None:
                    loss = loss + extra
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            value = loss.detach().float().item()
            if not math.isfinite(value):
                raise UserError(
                    f"train: the loss became {value} at step {step} of epoch {epoch + 1}; lower train.lr "
                    f"(now {cfg.lr}) or set train.max_grad_norm"
                )
            running, seen = running + value, seen + 1
            epoch_loss, epoch_batches = epoch_loss + value, epoch_batches + 1
            progress.advance(value, scheduler.get_last_lr()[0])
            if accelerator.sync_gradients:
                step += 1
                if step % cfg.log_every_steps == 0:
                    log({"kind": "train", "step": step, "epoch": round(epoch + epoch_batches / len(train_loader), 4),
                         "train_loss": running / seen, "lr": scheduler.get_last_lr()[0]})
                    running, seen = 0.0, 0
        train_seconds += time.perf_counter() - started
        eval_metrics = evaluate(model, eval_loader, backbone, accelerator)
        log({"kind": "eval", "step": step, "epoch": epoch + 1, "train_loss": epoch_loss / max(epoch_batches, 1),
             "eval": eval_metrics})
        progress.finish(eval_metrics, epoch_loss / max(epoch_batches, 1))
        _save_checkpoint(accelerator, ckpt_root, epoch + 1, step, history, train_seconds, cfg.keep_checkpoints)
    if not eval_metrics:  # resumed a run whose every epoch was done
        eval_metrics = evaluate(model, eval_loader, backbone, accelerator)
    accelerator.wait_for_everyone()
    return FitResult(accelerator.unwrap_model(model), eval_metrics, history, train_seconds, accelerator)


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete epoch checkpoint under ``root`` (its state file is written last)."""
    done = [p for p in root.glob("epoch-*") if (p / _STATE_FILE).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def _save_checkpoint(
    accelerator: Accelerator, root: Path, epoch: int, step: int, history: list[dict[str, Any]],
    train_seconds: float, keep: int,
) -> None:
    final = root / f"epoch-{epoch}"
    tmp = root / f".epoch-{epoch}.tmp"
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()  # every process writes its RNG state into tmp
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        state = {"epoch": epoch, "step": step, "history": history, "train_seconds": train_seconds}
        (tmp / _STATE_FILE).write_text(json.dumps(state))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)  # a kill before this leaves the previous checkpoint as the newest
        for old in sorted(root.glob("epoch-*"), key=lambda p: int(p.name.split("-")[1]))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


class _Progress:
    """A rich progress bar per epoch on the main process of an interactive terminal; one line per epoch otherwise."""

    def __init__(self, accelerator: Accelerator, quiet: bool) -> None:
        self.accelerator = accelerator
        self.quiet = quiet or not accelerator.is_main_process
        self.live = not self.quiet and sys.stderr.isatty()
        self._bar: Any = None

    def start(self, epoch: int, epochs: int, batches: int) -> None:
        self.epoch, self.epochs, self.t0 = epoch, epochs, time.perf_counter()
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn(f"epoch {epoch + 1}/{epochs}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TextColumn("loss {task.fields[loss]:.4f} lr {task.fields[lr]:.2e}"), TimeElapsedColumn(),
                TimeRemainingColumn(), transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("train", total=batches, loss=0.0, lr=0.0)

    def advance(self, loss: float, lr: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, loss=loss, lr=lr)

    def finish(self, metrics: dict[str, float], train_loss: float) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if not self.quiet:
            secs = time.perf_counter() - self.t0
            print(
                f"epoch {self.epoch + 1}/{self.epochs}: train_loss {train_loss:.4f}  "
                f"eval_loss {metrics['loss']:.4f}  accuracy {metrics['accuracy']:.4f}  "
                f"f1_macro {metrics['f1_macro']:.4f}  ({secs:.1f}s)",
                file=sys.stderr,
                flush=True,
            )
