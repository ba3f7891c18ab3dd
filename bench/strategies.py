"""Step time of each fine-tuning strategy relative to full fine-tuning.

For ResNet-18 (64 px images) and all-MiniLM-L6-v2 (128 tokens), builds the
model through the registered backbone plugin, applies each strategy plugin,
and times optimizer steps (forward, backward, AdamW) on a fixed synthetic
batch. Strategies alternate within each repeat so machine noise hits all of
them alike; the medians and their ratio to ``full`` are printed.

Usage: python bench/strategies.py [--repeats N] [--steps N] [--batch N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from tl_toolkit import BackboneConfig, DataConfig, Task
from tl_toolkit._quiet import quiet_libraries
from tl_toolkit._registry import registry

STRATEGIES = ["full", "head-only", "lora"]


def _setup(kind: str, strategy: str, batch: int) -> tuple[Any, Any, dict[str, torch.Tensor], Any, int, int]:
    torch.manual_seed(0)
    task = Task([str(i) for i in range(10)])
    if kind == "resnet18":
        backbone = registry.get("backbone", "resnet")(
            BackboneConfig(plugin="resnet", model="resnet18", pretrained=False),
            DataConfig(format="imagefolder", train="-", image_size=64),
        )
        inputs = {"pixel_values": torch.randn(batch, 3, 64, 64)}
    else:
        backbone = registry.get("backbone", "bert")(
            BackboneConfig(plugin="bert", model="sentence-transformers/all-MiniLM-L6-v2"),
            DataConfig(format="csv", train="-"),
        )
        inputs = {"input_ids": torch.randint(1000, 20000, (batch, 128)), "attention_mask": torch.ones(batch, 128,
                                                                                                        dtype=torch.long)}
    model = backbone.build(task)
    total = sum(p.numel() for p in model.parameters())
    strat = registry.get("strategy", strategy)({})
    model = strat.apply(model, backbone)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(strat.parameter_groups(model, 0.01), lr=1e-4)
    batch_ = {**inputs, "labels": torch.randint(0, 10, (batch,))}
    model.train()
    strat.train_mode(model)
    return backbone, model, batch_, optimizer, trainable, total


def _time_steps(backbone: Any, model: Any, batch: dict[str, torch.Tensor], optimizer: Any, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(backbone.forward(model, batch), batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    quiet_libraries(True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.repeats} repeats x {args.steps} steps")
    for kind in ("resnet18", "minilm-l6"):
        setups = {s: _setup(kind, s, args.batch) for s in STRATEGIES}
        for s in STRATEGIES:  # warm-up: allocator, first-call kernels
            _time_steps(*setups[s][:4], steps=1)
        times: dict[str, list[float]] = {s: [] for s in STRATEGIES}
        for _ in range(args.repeats):
            for s in STRATEGIES:
                times[s].append(_time_steps(*setups[s][:4], steps=args.steps))
        full = statistics.median(times["full"])
        print(f"\n{kind}")
        print(f"{'strategy':<10} {'trainable':>12} {'of total':>12} {'step ms':>9} {'vs full':>8}")
        for s in STRATEGIES:
            med = statistics.median(times[s])
            trainable, total = setups[s][4], setups[s][5]
            print(f"{s:<10} {trainable:>12,} {total:>12,} {med * 1000:>9.1f} {med / full:>7.2f}x")


if __name__ == "__main__":
    main()
