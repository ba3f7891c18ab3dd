"""The framework's cost per training step: tl_toolkit's loop against a minimal hand-written accelerate loop.

Both train the same model (two copies of one initialisation) on the same
data, batches and collate function, with the same optimizer (AdamW, through
the same factory), linear schedule and gradient clipping. tl_toolkit's side is
the engine's ``fit()`` exactly as ``tl run`` calls it; its train time excludes
evaluation and checkpointing, like the hand-written side's. One epoch per
repeat, alternating, medians; the ratio is tl_toolkit / hand-written.

Inputs are fixed-length (text: 128 tokens; images: 64 px), so both sides see
identical batches and any difference is the loop's own cost.

Usage: python -m bench.overhead [--repeats 5] [--batches 12] [--batch 32] [--models minilm,resnet18]
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from bench._common import set_threads, side_by_side, table

_SEQ, _PX, _LABELS = 128, 64, 5


def _setup(kind: str, n: int, seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """(recipe, backbone, model, dataset) for ``kind``: MiniLM text or ResNet-18 images, ``n`` examples."""
    import datasets
    import numpy as np
    import torch

    from tl_toolkit import Recipe, Task
    from tl_toolkit._performance import prepare_for_training
    from tl_toolkit._registry import registry

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, _LABELS, n).tolist()
    if kind == "minilm":
        raw = {"name": "overhead-minilm", "backbone": {"plugin": "bert", "model": "sentence-transformers/all-MiniLM-L6-v2"},
               "data": {"format": "csv", "train": "-", "max_length": _SEQ}}
        columns = {"input_ids": rng.integers(1000, 20000, (n, _SEQ)).tolist(), "attention_mask": [[1] * _SEQ] * n}
        ds = datasets.Dataset.from_dict({**columns, "labels": labels})
    else:
        raw = {"name": "overhead-resnet18", "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False},
               "data": {"format": "imagefolder", "train": "-", "image_size": _PX}}
        pixels = rng.standard_normal((n, 3, _PX, _PX), dtype=np.float32)
        ds = datasets.Dataset.from_dict({"pixel_values": pixels, "labels": labels}).with_format("torch")
    train = {"epochs": 1, "lr": 1e-4, "group_by_length": False}  # fixed-length inputs: the same batches both sides
    recipe = Recipe.model_validate({**raw, "strategy": {"plugin": "full"}, "train": train})
    backbone = registry.get("backbone", recipe.backbone.plugin)(recipe.backbone, recipe.data)
    torch.manual_seed(seed)
    model = backbone.build(Task([str(i) for i in range(_LABELS)]))
    # The model as tl_toolkit's engine trains it, for both sides (fit() finds it prepared already).
    prepare_for_training(model, recipe.train.gradient_checkpointing, registry.get("strategy", "full")({}))
    return recipe, backbone, model, ds


def _tl_epoch(recipe: Any, backbone: Any, model: Any, ds: Any, eval_ds: Any) -> float:
    """One epoch through tl_toolkit's engine; seconds per batch of its training loop."""
    from tl_toolkit._engine import fit, make_accelerator
    from tl_toolkit._registry import registry

    strategy = registry.get("strategy", "full")(recipe.strategy.options)
    model = strategy.apply(model, backbone)
    with tempfile.TemporaryDirectory() as out:
        accelerator = make_accelerator(recipe)
        result = fit(recipe, backbone, strategy, model, ds, eval_ds, Path(out), accelerator, quiet=True)
    return result.train_seconds / math.ceil(len(ds) / recipe.train.batch_size)


def _hand_epoch(recipe: Any, backbone: Any, model: Any, ds: Any) -> float:
    """One epoch of the smallest loop a practitioner would write with accelerate; seconds per batch."""
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from torch.utils.data import DataLoader
    from transformers import get_scheduler

    from tl_toolkit._performance import make_optimizer

    AcceleratorState._reset_state()
    accelerator = Accelerator()
    cfg = recipe.train
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, collate_fn=backbone.collate,
                        generator=torch.Generator().manual_seed(recipe.seed))
    optimizer = make_optimizer(model.parameters(), cfg.lr, accelerator.device)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=0, num_training_steps=len(loader))
    model.train()
    started = time.perf_counter()
    for batch in loader:
        labels = batch.pop("labels")
        logits = model(**batch).logits if "input_ids" in batch else model(batch["pixel_values"])
        loss = F.cross_entropy(logits, labels)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - started) / len(loader)


def run(models: list[str], repeats: int, batches: int, batch: int) -> list[dict[str, Any]]:
    rows = []
    for kind in models:
        recipe, backbone, model, ds = _setup(kind, batches * batch)
        recipe = recipe.model_copy(update={"train": recipe.train.model_copy(update={"batch_size": batch})})
        eval_ds = ds.select(range(min(len(ds), 8)))
        tl_model, hand_model = model, copy.deepcopy(model)
        medians = side_by_side(
            {"tl_toolkit": partial(_tl_epoch, recipe, backbone, tl_model, ds, eval_ds),
             "hand-written": partial(_hand_epoch, recipe, backbone, hand_model, ds)},
            repeats,
        )
        rows.append({"model": kind, "batch": batch, "tl_ms": medians["tl_toolkit"] * 1000,
                     "hand_ms": medians["hand-written"] * 1000, "ratio": medians["tl_toolkit"] / medians["hand-written"]})
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=12, help="batches per epoch")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--models", default="minilm,resnet18")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    from tl_toolkit._quiet import quiet_libraries

    quiet_libraries(True)
    threads = set_threads(args.threads)
    print(f"overhead: {args.repeats} repeats x {args.batches} batches of {args.batch}, {threads} threads")
    rows = run(args.models.split(","), args.repeats, args.batches, args.batch)
    print(table(rows, [("model", "model", ""), ("batch", "batch", "d"), ("tl_ms", "tl_toolkit ms/step", ".1f"),
                       ("hand_ms", "hand-written ms/step", ".1f"), ("ratio", "ratio", ".3f")]))
    return rows


if __name__ == "__main__":
    main()
