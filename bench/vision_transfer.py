"""CIFAR-10 source -> target transfer with a ResNet-18: what transfer buys on 100 images per class.

Trains ``recipes/cifar10_resnet18_source.yaml`` (airplane, automobile, bird,
cat, deer, from scratch) once, then the four target recipes
``recipes/cifar10_resnet18_target_{scratch,full,head-only,lora}.yaml`` (dog,
frog, horse, ship, truck, 100 training images per class, evaluated on all
their test images), the transferred ones starting from that source run. Prints
accuracy, macro-F1, train seconds and trainable parameters of each, and each
transfer's gain over scratch.

Usage: python bench/vision_transfer.py [--data DIR] [--out DIR] [--threads N] [--seeds 0,1,2] [--set KEY=VALUE] [--smoke]
    --data   a CIFAR-10 folder holding train/<class>/ and test/<class>/ (default ../shared/data/cifar10)
    --threads  torch threads (default 2); on a machine busy with other work 1 is often faster
    --seeds  the targets' seeds (default 0, the recipes' own); with several, each target runs at
             each seed from the same source run and the table ends with each one's mean
    --set    an override of every target run, e.g. to measure a candidate default
    --smoke  tiny sizes (1 epoch, few images) to check the pipeline end to end in a minute
"""

from __future__ import annotations

import argparse
import os
import statistics
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
    return (f"{name:<20} {s['eval']['accuracy']:>8.4f} {s['eval']['f1_macro']:>8.4f} {s['train_seconds']:>9.1f} "
            f"{wall:>8.1f} {s['trainable_params']:>12,} {s['num_train_examples']:>6} {s['num_eval_examples']:>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cifar10")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-vision-transfer")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an override of every target run (a candidate default, measured)")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = [f"data.train={args.data / 'train'}", f"data.eval={args.data / 'test'}"]
    extra = SMOKE if args.smoke else []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; data {args.data}; runs in {args.out}")

    started = time.perf_counter()
    source_dir = args.out / "source"
    rows = [_row("source", *_run("cifar10_resnet18_source.yaml", [*data, *extra, f"output_dir={source_dir}"]))]
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, list[FinetuneResult]] = {name: [] for name in TARGETS}
    for seed in seeds:
        for name in TARGETS:
            out = args.out / (name if len(seeds) == 1 else f"{name}-seed{seed}")
            overrides = [*data, *extra, f"output_dir={out}", f"seed={seed}", *args.set]
            if name != "scratch":
                overrides.append(f"backbone.init_from={source_dir}")
            result, wall = _run(f"cifar10_resnet18_target_{name}.yaml", overrides)
            results[name].append(result)
            rows.append(_row(f"target {name}" + (f" s{seed}" if len(seeds) > 1 else ""), result, wall))
    total = time.perf_counter() - started

    print(f"\n{'run':<20} {'accuracy':>8} {'macro-F1':>8} {'train s':>9} {'wall s':>8} {'trainable':>12} "
          f"{'train':>6} {'eval':>6}")
    print("\n".join(rows))
    if len(seeds) > 1:
        print(f"\nmean over seeds {args.seeds}:")
        for name in TARGETS:
            accuracies = [r.metrics["accuracy"] for r in results[name]]
            print(f"  {name:<10} accuracy {statistics.mean(accuracies):.4f} ± {statistics.stdev(accuracies):.4f}  "
                  f"({' '.join(f'{a:.4f}' for a in accuracies)})")

    def mean(name: str, metric: str) -> float:
        return statistics.mean(r.metrics[metric] for r in results[name])

    print("\ntransfer gain over scratch (target eval, percentage points):")
    for name in TARGETS[1:]:
        print(f"  {name:<10} accuracy {100 * (mean(name, 'accuracy') - mean('scratch', 'accuracy')):+6.1f}  "
              f"macro-F1 {100 * (mean(name, 'f1_macro') - mean('scratch', 'f1_macro')):+6.1f}")
    print(f"\ntotal: {total / 60:.1f} min (source + {len(TARGETS) * len(seeds)} targets, evaluation and saving included)")


if __name__ == "__main__":
    main()
