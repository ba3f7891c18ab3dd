"""``tl plan``: what a recipe will cost, without training it.

Builds the model and applies the strategy as ``tl run`` would, then reports
trainable and total parameters, whether the feature cache applies, whether
every model and data file is available offline, and the peak memory and the
time per epoch on this machine: the engine's own training step runs on the
first batches of the epoch as its sampler draws them, and the measured times,
fitted against each batch's padded tokens (text) or pixels (images), are
summed over every batch of the epoch, with a range for the measurements' noise.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ._errors import UserError
from ._inherit import inherit_options, taken_line
from ._recipe import Recipe
from ._registry import registry
from ._run_files import resolve_run_dir

__all__ = ["plan"]


def plan(recipe: Recipe, steps: int = 8, warmup: int = 2) -> dict[str, Any]:
    """Measure ``recipe`` without training it; returns the figures :func:`format_plan` prints.

    The engine's own set-up and step (:mod:`._train_step`) train ``warmup`` +
    ``steps`` batches drawn as the first epoch draws them (length grouping,
    seeded sampler); the ``steps`` measured ones fit time = a + b * size, size
    being a batch's largest input (padded tokens, or pixels), and the fit is
    summed over every batch of the epoch.

    Raises:
        UserError: a model or data file is missing (offline), or the recipe cannot run.
    """
    import torch
    from accelerate.utils import set_seed

    from ._data import load_task_data
    from ._engine import make_accelerator
    from ._feature_cache import cache_blocker
    from ._memory import peak_memory
    from ._pipeline import _load_source
    from ._plugin_api import Task
    from ._tasks import make_task
    from ._train_step import length_group_batches, prepare_training

    source_dir: Path | None = None
    taken: dict[str, Any] = {}
    if recipe.backbone.init_from:  # planned as the run will train: with what it takes from its source run
        source_dir = _source_dir(recipe)
        recipe, taken = inherit_options(recipe, source_dir)
    accelerator = make_accelerator(recipe)
    set_seed(recipe.seed)
    backbone = registry.get("backbone", recipe.backbone.plugin)(recipe.backbone, recipe.data)
    strategy = registry.get("strategy", recipe.strategy.plugin)(recipe.strategy.options)
    task = make_task(recipe.data, recipe.train)
    data = load_task_data(recipe.data, backbone.modality, recipe.seed, task)
    task.setup(data.label_names, data.train["labels"])
    model = backbone.build(Task(data.label_names, task.head), _load_source(source_dir, recipe) if source_dir else None)
    total = sum(p.numel() for p in model.parameters())
    model = strategy.apply(model, backbone)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    blocker = cache_blocker(recipe, backbone, strategy, model)
    train_ds = task.prepare(backbone, data.train, train=True)
    eval_ds = task.prepare(backbone, data.eval.select(range(min(len(data.eval), recipe.train.batch_size))),
                           train=False)
    set_seed(recipe.seed)
    training = prepare_training(recipe, backbone, strategy, model, train_ds, eval_ds, accelerator, task)
    recomputes = training.recomputes

    loader = training.train_loader
    loader.set_epoch(0)
    unwrapped = accelerator.unwrap_model(training.model)
    strategy.on_epoch_start(unwrapped, 0, recipe.train.epochs)
    training.model.train()
    strategy.train_mode(unwrapped)
    backbone.train_mode(unwrapped)
    warmup = warmup if len(loader) > warmup + 1 else 0
    sizes: list[int] = []
    examples: list[int] = []
    seconds: list[float] = []
    with peak_memory() as peak:
        started = time.perf_counter()
        for i, batch in enumerate(loader):  # each batch's time includes drawing it, as in the engine's epoch
            if i >= warmup + steps:
                break
            training.step(batch)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if i >= warmup:
                sizes.append(_batch_size(batch))
                examples.append(_examples(batch))
                seconds.append(time.perf_counter() - started)
            started = time.perf_counter()
    per_example = sizes[0] / examples[0] if sizes else 1.0
    epoch_sizes = _epoch_sizes(recipe, backbone, train_ds, per_example, length_group_batches(recipe, task),
                               packed=task.packed)
    estimate, low, high = _extrapolate(sizes, seconds, epoch_sizes)
    return {
        "recipe": recipe.name, "backbone": backbone.describe(), "strategy": recipe.strategy.plugin,
        "trainable_params": trainable, "total_params": total,
        "train_examples": len(data.train), "eval_examples": len(data.eval),
        "feature_cache": "applies" if blocker is None else f"does not apply: {blocker}",
        "gradient_checkpointing": recomputes,
        "offline": _offline_files(recipe, backbone.offline_status()), "measured_steps": len(seconds), "warmup_steps": warmup,
        "seconds_per_step": sum(seconds) / max(len(seconds), 1), "batches_per_epoch": len(epoch_sizes),
        "size_unit": "padded tokens" if backbone.lengths(train_ds) is not None else "inputs x pixels",
        "seconds_per_epoch": estimate, "seconds_per_epoch_range": [low, high], "epochs": recipe.train.epochs,
        "peak_memory_mib": peak.mib, "memory_device": peak.device,
        "pretrain": strategy.pretrain_plan(len(data.train), Task(data.label_names, task.head)),
        "loop_epochs": strategy.loop_epochs(recipe.train.epochs),
        "inherited_options": taken,
    }


def _source_dir(recipe: Recipe) -> Path:
    """The ``model/`` directory of ``backbone.init_from``'s run (tl plan trains nothing, so it must be finished)."""
    from ._validate import validate

    path = Path(recipe.backbone.init_from or "")
    if path.suffix in (".yaml", ".yml"):
        run_dir = validate(path).output_path
        if not (run_dir / "summary.json").is_file():
            raise UserError(f"backbone.init_from: the source recipe {path} has no finished run in {run_dir}; "
                            f"tl plan trains nothing: run `tl run {path}` first, or plan the source recipe itself")
        path = run_dir
    return resolve_run_dir(path)


def _batch_size(batch: dict[str, Any]) -> int:
    """The size of a batch's largest input: padded tokens for text, values (pixels) for images."""
    return max(int(v.numel()) for k, v in batch.items() if k != "labels" and hasattr(v, "numel"))


def _examples(batch: dict[str, Any]) -> int:
    if "cu_seq_lens_q" in batch:  # a padding-free row (Backbone.padding_free_collate): its examples' boundaries
        return len(batch["cu_seq_lens_q"]) - 1
    return int(batch["labels"].shape[0])


def _epoch_sizes(recipe: Recipe, backbone: Any, train_ds: Any, per_example: float, group_batches: int,
                 packed: bool = False) -> list[float]:
    """The size of every batch of the first epoch, in the order the engine's sampler draws them.

    With lengths (text): each batch is padded to its longest example, or holds the sum of their lengths
    when ``packed`` (padding-free); without, every example has ``per_example``.
    """
    import torch

    bs = recipe.train.batch_size
    lengths = backbone.lengths(train_ds)
    n = len(train_ds)
    if lengths is None:
        return [per_example * min(bs, n - i) for i in range(0, n, bs)]
    if recipe.train.group_by_length and not packed:
        from ._sampling import LengthGroupedSampler

        sampler = LengthGroupedSampler(lengths, bs, recipe.seed, group_batches)
        sampler.set_epoch(0)
        order = list(sampler)
    else:  # a shuffled order: any draw pads alike on average
        order = torch.randperm(n, generator=torch.Generator().manual_seed(recipe.seed)).tolist()
    return [float(sum(lengths[j] for j in chunk) if packed else len(chunk) * max(lengths[j] for j in chunk))
            for chunk in (order[i:i + bs] for i in range(0, n, bs))]


def _extrapolate(sizes: list[int], seconds: list[float], epoch_sizes: list[float]) -> tuple[float, float, float]:
    """Seconds for the epoch from the measured batches, with a range that covers the measurements' spread.

    Time = a + b * size by least squares (or b * size when the sizes do not vary, e.g. images); the range
    is the estimate scaled by the mean ratio of measured to fitted time -/+ twice its standard error.
    """
    n = len(sizes)
    if n == 0:
        return 0.0, 0.0, 0.0
    mean_x, mean_t = sum(sizes) / n, sum(seconds) / n
    var_x = sum((x - mean_x) ** 2 for x in sizes)
    b = sum((x - mean_x) * (t - mean_t) for x, t in zip(sizes, seconds, strict=True)) / var_x if var_x else 0.0
    a = mean_t - b * mean_x
    if var_x == 0 or b <= 0 or a < 0:  # no spread, or noise that inverts the slope: time in proportion to size
        a, b = 0.0, mean_t / mean_x
    estimate = sum(a + b * x for x in epoch_sizes)
    ratios = [t / (a + b * x) for x, t in zip(sizes, seconds, strict=True)]
    mean_r = sum(ratios) / n
    spread = (sum((r - mean_r) ** 2 for r in ratios) / (n - 1)) ** 0.5 if n > 1 else 0.5
    half = 2 * spread / n ** 0.5
    return estimate, estimate * max(mean_r - half, 0.0), estimate * (mean_r + half)


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
    low, high = f["seconds_per_epoch_range"]
    share = 100 * f["trainable_params"] / max(f["total_params"], 1)
    mem = "GPU allocator" if f["memory_device"] == "cuda" else "resident set added, CPU"
    lines = [
        f"{f['recipe']}: {f['backbone']} + {f['strategy']}, {f['train_examples']} train / {f['eval_examples']} eval",
        f"parameters:   {f['trainable_params']:,} of {f['total_params']:,} train ({share:.2f}%)",
        f"time:         ~{f['seconds_per_epoch']:.0f} s per epoch of training (range {low:.0f}-{high:.0f} s), "
        f"~{f['seconds_per_epoch'] * f['epochs']:.0f} s for {f['epochs']} epochs, evaluation not included",
        f"              from {f['measured_steps']} engine steps after {f['warmup_steps']} warm-up "
        f"({f['seconds_per_step']:.3f} s each on average), fitted to {f['size_unit']} over "
        f"{f['batches_per_epoch']} batches",
        f"peak memory:  ~{f['peak_memory_mib']:.0f} MiB during those steps ({mem}), activations "
        f"{'recomputed' if f['gradient_checkpointing'] else 'kept'} for the backward pass",
        f"feature cache: {f['feature_cache']}",
        "files:", *(f"  {line}" for line in f["offline"]),
    ]
    if f.get("pretrain"):  # a stage of the strategy's own runs first; the measured steps are the loop's
        lines.insert(2, f"first stage:  {f['pretrain']}")
        if f.get("loop_epochs") == 0:
            lines[3] = f"time:         the engine's loop runs no epoch ({f['strategy']} fits its head in the stage)"
    if f["feature_cache"] == "applies" and f.get("loop_epochs") != 0:
        lines.insert(3, "              (with the feature cache, only the first epoch runs the backbone)")
    if f.get("inherited_options"):
        lines.insert(1, f"taken:        {taken_line(f['inherited_options'])}")
    return "\n".join(lines)
