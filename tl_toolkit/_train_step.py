"""The engine's training step and its set-up, shared by ``fit`` and ``tl plan``.

:func:`prepare_training` builds what a run trains with (loaders with length
grouping and the seeded sampler, the optimizer with the strategy's groups, the
scheduler, everything through ``accelerator.prepare``); :class:`TrainStep` is
one batch of training: batch augmentation, forward, the task's loss plus the
strategy's term, backward, clipping, optimizer and scheduler step. ``tl plan``
times exactly these on the batches the first epoch would draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import UserError
from ._performance import make_optimizer, prepare_for_training, step_autocast
from ._transfer_lr import TransferRates, scale_transferred

if TYPE_CHECKING:
    import datasets
    import torch
    from accelerate import Accelerator
    from torch import nn

    from ._plugin_api import Backbone, Strategy
    from ._recipe import Recipe
    from ._task_api import TaskPlugin

__all__ = ["TrainStep", "Training", "padding_free_collate", "prepare_training"]


class TrainStep:
    """One training batch through the engine: ``value, finite = step(batch)``."""

    def __init__(self, accelerator: Accelerator, model: nn.Module, backbone: Backbone, strategy: Strategy,
                 objective: TaskPlugin, optimizer: Any, scheduler: Any, max_grad_norm: float | None) -> None:
        self.accelerator, self.model, self.backbone, self.strategy = accelerator, model, backbone, strategy
        self.objective, self.optimizer, self.scheduler, self.max_grad_norm = objective, optimizer, scheduler, max_grad_norm
        # Every parameter the optimizer holds: a phased strategy unfreezes some of them later.
        self.trainable = [p for group in optimizer.param_groups for p in group["params"]]
        self.on_gradients: Callable[[], None] | None = None  # called with each step's gradients, before clipping
        self.autocast: torch.dtype | None = None  # forward and loss under CPU autocast (train.mixed_precision: auto)

    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[float, bool]:
        """Train on ``batch`` (an optimizer step when accumulation is complete); the loss and whether it is finite."""
        import torch

        accelerator = self.accelerator
        with accelerator.accumulate(self.model):
            batch = self.backbone.train_batch(batch)  # batch-level augmentation; labels may turn soft
            with torch.autocast("cpu", dtype=self.autocast or torch.bfloat16, enabled=self.autocast is not None):
                logits = self.backbone.forward(self.model, batch)
                loss = self.objective.loss(logits, batch["labels"])
                extra = self.strategy.extra_loss(self.model, batch, logits)
                if extra is not None:
                    loss = loss + extra
            accelerator.backward(loss)
            # The step's one wait for the device: the backward pass is already queued behind it.
            value, finite = _loss_and_finite(accelerator, loss)
            if finite:
                if accelerator.sync_gradients and self.on_gradients is not None:
                    self.on_gradients()
                if accelerator.sync_gradients and self.max_grad_norm:
                    accelerator.clip_grad_norm_(self.trainable, self.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
            else:  # no update: drop this batch's gradients and those accumulated with it
                for param in self.trainable:
                    param.grad = None
            self.optimizer.zero_grad(set_to_none=True)
        return value, finite


@dataclass
class Training:
    """What :func:`prepare_training` sets up, prepared by accelerate."""

    model: nn.Module
    optimizer: Any
    scheduler: Any
    train_loader: Any
    eval_loader: Any
    step: TrainStep
    recomputes: bool  # activations recomputed in the backward pass (train.gradient_checkpointing)


def prepare_training(recipe: Recipe, backbone: Backbone, strategy: Strategy, model: nn.Module,
                     train_ds: datasets.Dataset, eval_ds: datasets.Dataset, accelerator: Accelerator,
                     objective: TaskPlugin, rates: TransferRates | None = None) -> Training:
    """Loaders, optimizer and scheduler of a run, prepared by ``accelerator``, and its :class:`TrainStep`.

    ``rates``: the transferred weights and the ratio of their learning rate to ``train.lr``.

    Raises:
        UserError: the strategy left no trainable parameters.
    """
    from transformers import get_scheduler


    cfg = recipe.train
    grouped = length_group_batches(recipe, objective)
    packed = padding_free_collate(recipe, backbone, objective)
    objective.packed = packed is not None
    train_loader = _loader(train_ds, backbone, cfg.batch_size, True, recipe, grouped, packed)
    eval_loader = _loader(eval_ds, backbone, cfg.eval_batch_size or 2 * cfg.batch_size, False, recipe, grouped)
    recomputes = prepare_for_training(model, cfg.gradient_checkpointing, strategy, cfg.cpu_dropout)
    groups = scale_transferred(strategy.parameter_groups(model, cfg.weight_decay), rates or TransferRates())
    optimizer = make_optimizer(groups, cfg.lr, accelerator.device, cfg.optimizer)
    if not optimizer.param_groups:
        raise UserError(f"strategy.plugin: {recipe.strategy.plugin!r} left no trainable parameters")
    for group in optimizer.param_groups:  # layer-wise learning rates: a group may scale train.lr
        group["lr"] = cfg.lr * group.pop("lr_scale", 1.0)

    model, optimizer, train_loader, eval_loader = accelerator.prepare(model, optimizer, train_loader, eval_loader)
    total_steps = math.ceil(len(train_loader) / cfg.grad_accum_steps) * cfg.epochs
    # The prepared scheduler steps once per process for each optimizer step, as accelerate's examples do.
    scheduler = get_scheduler(
        cfg.scheduler,
        optimizer,
        num_warmup_steps=int(cfg.warmup_ratio * total_steps) * accelerator.num_processes,
        num_training_steps=total_steps * accelerator.num_processes,
    )
    scheduler = accelerator.prepare(scheduler)
    step = TrainStep(accelerator, model, backbone, strategy, objective, optimizer, scheduler, cfg.max_grad_norm)
    # A frozen backbone's features must be those its feature cache holds (fp32): only trained backbones autocast.
    step.autocast = step_autocast(cfg.mixed_precision, accelerator.device,
                                  backbone.cpu_bf16 and not strategy.frozen_backbone)
    return Training(model, optimizer, scheduler, train_loader, eval_loader, step, recomputes)


def length_group_batches(recipe: Recipe, task: TaskPlugin) -> int:
    """Batches per length group: ``train.length_group_batches``, else the task's own default."""
    return recipe.train.length_group_batches or task.length_group_batches


def padding_free_collate(recipe: Recipe, backbone: Backbone, task: TaskPlugin) -> Callable[..., Any] | None:
    """The backbone's padding-free collate when ``train.padding_free`` (else the task's default) asks for it."""
    wanted = recipe.train.padding_free if recipe.train.padding_free is not None else task.padding_free
    return backbone.padding_free_collate() if wanted else None


def _loader(ds: datasets.Dataset, backbone: Backbone, batch_size: int, shuffle: bool, recipe: Recipe,
            group_batches: int, packed: Callable[..., Any] | None = None):
    import torch
    from torch.utils.data import DataLoader

    # Every loader has its own generator, shuffled or not: a DataLoader without one draws its base seed from the
    # global RNG each time an epoch's iterator starts, and a run resumed inside an epoch starts one where the
    # uninterrupted run did not, which would shift the dropout masks of every later batch.
    generator = torch.Generator().manual_seed(recipe.seed)
    grouping = shuffle and recipe.train.group_by_length and packed is None  # no padding: nothing to group for
    lengths = backbone.lengths(ds) if grouping else None
    sampler = None
    if lengths is not None:  # similar lengths share a batch: less padding, same randomness across batches
        from ._sampling import LengthGroupedSampler

        sampler, shuffle = LengthGroupedSampler(lengths, batch_size, recipe.seed, group_batches), False
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        collate_fn=packed or backbone.collate,
        num_workers=recipe.train.num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=recipe.train.num_workers > 0,
        generator=generator,
    )


def _loss_and_finite(accelerator: Accelerator, loss: Any) -> tuple[float, bool]:
    """The batch's loss, and whether it is finite on every process (they must agree, or one would
    step while another stops), read from the device in one transfer."""
    import torch

    value = loss.detach().float().reshape(1)
    finite = torch.isfinite(value).to(torch.float32)
    if accelerator.num_processes > 1:
        finite = accelerator.reduce(finite, reduction="sum") / accelerator.num_processes
    loss_value, all_finite = torch.cat([value, finite]).tolist()
    return loss_value, all_finite == 1.0
