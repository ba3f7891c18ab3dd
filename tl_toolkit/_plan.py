"""``tl plan``: what a recipe will cost, without training it.

Builds the model and applies the strategy as ``tl run`` would, then reports
trainable and total parameters, whether the feature cache applies, whether
every model and data file is available offline, and, from a few measured
training steps on real batches, the peak memory and the time per epoch on
this machine.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from ._errors import UserError
from ._performance import make_optimizer, prepare_for_training
from ._recipe import Recipe
from ._registry import registry

__all__ = ["plan"]


def plan(recipe: Recipe, steps: int = 3) -> dict[str, Any]:
    """Measure ``recipe`` without training it; returns the figures :func:`format_plan` prints.

    Raises:
        UserError: a model or data file is missing (offline), or the recipe cannot run.
    """
    import torch

    from ._data import load_task_data
    from ._feature_cache import cache_blocker
    from ._memory import peak_memory
    from ._plugin_api import Task

    backbone = registry.get("backbone", recipe.backbone.plugin)(recipe.backbone, recipe.data)
    strategy = registry.get("strategy", recipe.strategy.plugin)(recipe.strategy.options)
    data = load_task_data(recipe.data, backbone.modality, recipe.seed)
    if recipe.backbone.init_from:
        raise UserError("backbone.init_from: tl plan measures a recipe's own model; plan the source run first, "
                        "then this one with init_from set to its finished directory")
    model = backbone.build(Task(data.label_names))
    total = sum(p.numel() for p in model.parameters())
    model = strategy.apply(model, backbone)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    blocker = cache_blocker(recipe, backbone, strategy, model)
    recomputes = prepare_for_training(model, recipe.train.gradient_checkpointing, strategy)

    bs = recipe.train.batch_size
    sample = backbone.preprocess(data.train.select(range(min(len(data.train), (steps + 1) * bs))), train=True)
    batches = [backbone.collate([sample[j] for j in range(i, min(i + bs, len(sample)))])
               for i in range(0, len(sample), bs)]
    optimizer = make_optimizer(strategy.parameter_groups(model, recipe.train.weight_decay), recipe.train.lr,
                               torch.device("cpu"))
    strategy.on_epoch_start(model, 0, recipe.train.epochs)
    model.train()
    strategy.train_mode(model)
    seconds: list[float] = []
    with peak_memory() as peak:
        for batch in batches:
            started = time.perf_counter()
            logits = backbone.forward(model, batch)
            loss = torch.nn.functional.cross_entropy(logits.float(), batch["labels"])
            extra = strategy.extra_loss(model, batch, logits)
            (loss if extra is None else loss + extra).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            seconds.append(time.perf_counter() - started)
    step = sum(seconds[1:]) / max(len(seconds) - 1, 1) if len(seconds) > 1 else seconds[0]
    per_epoch = step * math.ceil(len(data.train) / bs)
    return {
        "recipe": recipe.name, "backbone": backbone.describe(), "strategy": recipe.strategy.plugin,
        "trainable_params": trainable, "total_params": total,
        "train_examples": len(data.train), "eval_examples": len(data.eval),
        "feature_cache": "applies" if blocker is None else f"does not apply: {blocker}",
        "gradient_checkpointing": recomputes,
        "offline": _offline_files(recipe, backbone.offline_status()), "measured_steps": len(seconds), "seconds_per_step": step,
        "seconds_per_epoch": per_epoch, "epochs": recipe.train.epochs,
        "peak_memory_mib": peak.mib, "memory_device": peak.device,
    }


def _offline_files(recipe: Recipe, model_status: str | None = None) -> list[str]:
    """Each file the run reads, with where it comes from (``model_status``: the backbone's ``offline_status``)."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    model = recipe.backbone.model
    where = model_status or ("local directory" if Path(model).is_dir() else (
        "local copy (HF_HUB_OFFLINE=1)" if offline else "loaded (hub cache or download)"))
    lines = [f"model {model}: {where}"]
    if recipe.backbone.weights:
        lines.append(f"weights {recipe.backbone.weights}: local file")
    for key in ("train", "eval"):
        value = getattr(recipe.data, key)
        if value and Path(value).exists():
            lines.append(f"data.{key} {value}: local")
        elif value:
            lines.append(f"data.{key} {value}: {recipe.data.format} split, loaded")
    return lines


def format_plan(figures: dict[str, Any]) -> str:
    """The plan as the lines ``tl plan`` prints."""
    f = figures
    share = 100 * f["trainable_params"] / max(f["total_params"], 1)
    mem = "GPU allocator" if f["memory_device"] == "cuda" else "resident set added, CPU"
    lines = [
        f"{f['recipe']}: {f['backbone']} + {f['strategy']}, {f['train_examples']} train / {f['eval_examples']} eval",
        f"parameters:   {f['trainable_params']:,} of {f['total_params']:,} train ({share:.2f}%)",
        f"time:         {f['seconds_per_step']:.3f} s per step (mean of {f['measured_steps'] - 1 or 1} measured), "
        f"~{f['seconds_per_epoch']:.0f} s per epoch, ~{f['seconds_per_epoch'] * f['epochs']:.0f} s for "
        f"{f['epochs']} epochs",
        f"peak memory:  ~{f['peak_memory_mib']:.0f} MiB during those steps ({mem}), activations "
        f"{'recomputed' if f['gradient_checkpointing'] else 'kept'} for the backward pass",
        f"feature cache: {f['feature_cache']}",
        "files:", *(f"  {line}" for line in f["offline"]),
    ]
    if f["feature_cache"] == "applies":
        lines.insert(3, "              (with the feature cache, only the first epoch runs the backbone)")
    return "\n".join(lines)
