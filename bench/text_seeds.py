"""Accuracy over seeds and speed: tl_toolkit (its CPU dropout, or PyTorch's) against the Trainer on SST-2.

The setting of :mod:`bench.text_vs_trainer` (all-MiniLM-L6-v2, 20,000 SST-2
sentences, 1 epoch, batch 32; full fine-tuning at lr 3e-5, LoRA on every linear
layer of the blocks at 5e-4), run for each seed by three variants:

* ``tl``: ``tl_toolkit.finetune`` with its defaults (``train.cpu_dropout: true``);
* ``tl-torch-dropout``: the same with ``train.cpu_dropout: false`` (PyTorch's
  dropout and attention);
* ``trainer``: the plain ``transformers.Trainer`` script (with peft for LoRA).

Prints every run's dev accuracy and training samples/s, then per variant the
mean and standard deviation of the accuracy, Welch's two-sample t-test
(``scipy.stats.ttest_ind``) of each tl variant against the Trainer and of the
two dropouts against each other, and the speed ratio of the mean samples/s.
``--train KEY=VALUE`` adds ``train.*`` keys to both tl variants (e.g.
``--train mixed_precision=bf16``). ``--json PATH`` writes every figure.

Full size (the issue's figures; about 50 minutes for full fine-tuning on 2 cores)::

    python -m bench.text_seeds --strategy full --seeds 0-4
    python -m bench.text_seeds --strategy lora --seeds 0-4

``--quick`` runs 1,000 sentences and two seeds: a check, not a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch
import yaml

from bench.text_vs_trainer import ALL_LINEAR, LR, SST2, read_tsv, run_toolkit, run_trainer

VARIANTS = ("tl", "tl-torch-dropout", "trainer")


def seeds(text: str) -> list[int]:
    """``0-4`` or ``0,2,5``."""
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def setting(pair: str) -> tuple[str, object]:
    key, _, value = pair.partition("=")
    return key, yaml.safe_load(value)


def summarize(runs: dict[str, list[dict[str, float]]], samples: int) -> dict[str, dict[str, float]]:
    """Mean, standard deviation and samples/s of each variant; Welch's t-test p-values between them."""
    from scipy.stats import ttest_ind

    out: dict[str, dict[str, float]] = {}
    for name, rows in runs.items():
        acc = [r["accuracy"] for r in rows]
        out[name] = {"mean": statistics.fmean(acc), "std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                     "samples_per_s": samples * len(rows) / sum(r["train_seconds"] for r in rows)}
    pairs = [("tl", "trainer"), ("tl-torch-dropout", "trainer"), ("tl", "tl-torch-dropout")]
    for a, b in pairs:
        if a in runs and b in runs and len(runs[a]) > 1 and len(runs[b]) > 1:
            test = ttest_ind([r["accuracy"] for r in runs[a]], [r["accuracy"] for r in runs[b]], equal_var=False)
            out[a][f"p_vs_{b}"] = float(test.pvalue)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategy", choices=["full", "lora"], default="full")
    parser.add_argument("--seeds", type=seeds, default=seeds("0-4"))
    parser.add_argument("--variants", type=lambda v: v.split(","), default=list(VARIANTS))
    parser.add_argument("--train", type=setting, action="append", default=[], metavar="KEY=VALUE",
                        help="a train.* key for both tl variants, e.g. mixed_precision=bf16")
    parser.add_argument("--train-samples", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="1,000 sentences, seeds 0 and 1")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"--variants: unknown {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    if args.quick:
        args.train_samples, args.seeds = 1_000, [0, 1]
    # what bench.text_vs_trainer's run functions read
    args.epochs, args.batch_size, args.max_length, args.clock = 1, 32, 128, "wall"
    args.lora_targets = ALL_LINEAR
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(2)
    extra = dict(args.train)

    sentences, labels = read_tsv(SST2 / "train.tsv", args.train_samples)
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in args.variants}
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.tsv"
        with train_file.open("w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in zip(sentences, labels, strict=True)))
        for seed in args.seeds:
            args.seed = seed
            for variant in args.variants:
                out = Path(tmp) / f"{variant}-{seed}"
                if variant == "trainer":
                    row = run_trainer(args, sentences, labels, out)
                else:
                    row = run_toolkit(args, train_file, out, **extra,
                                      **({"cpu_dropout": False} if variant == "tl-torch-dropout" else {}))
                runs[variant].append({"seed": seed, **row})
                print(f"seed {seed} {variant:<17} dev acc {row['accuracy']:.4f}  "
                      f"{len(sentences) / row['train_seconds']:6.1f} samples/s", flush=True)

    n = len(sentences)
    stats = summarize(runs, n)
    print(f"\nall-MiniLM-L6-v2, {args.strategy} (lr {LR[args.strategy]}), {n:,} SST-2 sentences x 1 epoch, batch 32, "
          f"seeds {args.seeds}, 2 threads; tl train settings: {extra or 'defaults'}")
    print(f"{'variant':<17} {'accuracies':<44} {'mean':>7} {'std':>7} {'samples/s':>10}")
    for name, rows in runs.items():
        accs = " ".join(f"{r['accuracy']:.4f}" for r in rows)
        s = stats[name]
        print(f"{name:<17} {accs:<44} {s['mean']:>7.4f} {s['std']:>7.4f} {s['samples_per_s']:>10.1f}")
    for name, s in stats.items():
        for key, p in s.items():
            if key.startswith("p_vs_"):
                other = key[5:]
                print(f"{name} - {other}: {(s['mean'] - stats[other]['mean']) * 100:+.2f} pt, Welch p = {p:.3f}")
    if "trainer" in stats:
        for name in ("tl", "tl-torch-dropout"):
            if name in stats:
                print(f"speed {name} / trainer: {stats[name]['samples_per_s'] / stats['trainer']['samples_per_s']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"strategy": args.strategy, "train": extra, "samples": n, "runs": runs,
                                         "stats": stats}, indent=1) + "\n")


if __name__ == "__main__":
    main()
