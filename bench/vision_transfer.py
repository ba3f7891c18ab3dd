"""CIFAR-10 source -> target transfer with a ResNet-18: what transfer buys on 100 images per class.

Trains ``recipes/cifar10_resnet18_source.yaml`` (airplane, automobile, bird,
cat, deer, from scratch) once, then the four target recipes
``recipes/cifar10_resnet18_target_{scratch,full,head-only,lora}.yaml`` (dog,
frog, horse, ship, truck, 100 training images per class, evaluated on all
their test images), the transferred ones starting from that source run. Prints
accuracy, macro-F1, train seconds and trainable parameters of each, and each
transfer's gain over scratch.

Usage: python bench/vision_transfer.py [--data DIR] [--out DIR] [--threads N] [--smoke]
    --data   a CIFAR-10 folder holding train/<class>/ and test/<class>/ (default ../shared/data/cifar10)
    --threads  torch threads (default 2); on a machine busy with other work 1 is often faster
    --smoke  tiny sizes (1 epoch, few images) to check the pipeline end to end in a minute
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch

from tl_toolkit import FinetuneResult, finetune

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["scratch", "full", "head-only", "lora"]
SMOKE = ["train.epochs=1", "data.max_train_samples=40", "data.max_eval_samples=40"]


def _run(recipe: str, overrides: list[str]) -> tuple[FinetuneResult, float]:
    started = time.perf_counter()
    result = finetune(ROOT / "recipes" / recipe, overrides, overwrite=True, quiet=True)
    return result, time.perf_counter() - started


def _row(name: str, result: FinetuneResult, wall: float) -> str:
    s = result.summary
    return (f"{name:<18} {s['eval']['accuracy']:>8.4f} {s['eval']['f1_macro']:>8.4f} {s['train_seconds']:>9.1f} "
            f"{wall:>8.1f} {s['trainable_params']:>12,} {s['num_train_examples']:>6} {s['num_eval_examples']:>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cifar10")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-vision-transfer")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = [f"data.train={args.data / 'train'}", f"data.eval={args.data / 'test'}"]
    extra = SMOKE if args.smoke else []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; data {args.data}; runs in {args.out}")

    started = time.perf_counter()
    source_dir = args.out / "source"
    rows = [_row("source", *_run("cifar10_resnet18_source.yaml", [*data, *extra, f"output_dir={source_dir}"]))]
    results: dict[str, FinetuneResult] = {}
    for name in TARGETS:
        overrides = [*data, *extra, f"output_dir={args.out / name}"]
        if name != "scratch":
            overrides.append(f"backbone.init_from={source_dir}")
        results[name], wall = _run(f"cifar10_resnet18_target_{name}.yaml", overrides)
        rows.append(_row(f"target {name}", results[name], wall))
    total = time.perf_counter() - started

    print(f"\n{'run':<18} {'accuracy':>8} {'macro-F1':>8} {'train s':>9} {'wall s':>8} {'trainable':>12} "
          f"{'train':>6} {'eval':>6}")
    print("\n".join(rows))
    scratch = results["scratch"].metrics
    print("\ntransfer gain over scratch (target eval, percentage points):")
    for name in TARGETS[1:]:
        m = results[name].metrics
        print(f"  {name:<10} accuracy {100 * (m['accuracy'] - scratch['accuracy']):+6.1f}  "
              f"macro-F1 {100 * (m['f1_macro'] - scratch['f1_macro']):+6.1f}")
    print(f"\ntotal: {total / 60:.1f} min (source + 4 targets, evaluation and saving included)")


if __name__ == "__main__":
    main()
