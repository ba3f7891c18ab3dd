"""tl_toolkit against a plain Hugging Face Trainer script: all-MiniLM-L6-v2 on SST-2.

The same model, training sentences, epochs, batch size, learning rate and
max_length, run once through ``tl_toolkit.finetune`` and once through a
``transformers.Trainer`` with its defaults (``AutoModelForSequenceClassification``,
``DataCollatorWithPadding``, no length grouping), side by side in one process.
Prints dev accuracy on the 872 dev sentences, train seconds and samples/s for
both, and tl_toolkit's speed-up.

Full size (the issue's figures; minutes per run on a CPU)::

    python bench/text_vs_trainer.py --strategy full
    python bench/text_vs_trainer.py --strategy lora
    python bench/text_vs_trainer.py --strategy head-only --epochs 10

``--quick`` runs 1,000 sentences to check that everything works. On a machine
shared with other jobs, ``--clock cpu`` times both training loops in CPU
seconds of this process (``time.process_time``) instead of wall seconds, so
the neighbours' load does not land on one side more than the other.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
import types
from pathlib import Path

import torch

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
LR = {"full": 3e-5, "lora": 5e-4, "head-only": 1e-3}
#: LoRA targets of recipes/sst2_bert_lora.yaml: every linear layer of the transformer blocks.
ALL_LINEAR = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
              "intermediate.dense", "output.dense"]


def read_tsv(path: Path, limit: int | None = None) -> tuple[list[str], list[int]]:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = rows[:limit] if limit else rows
    return [r["sentence"] for r in rows], [int(r["label"]) for r in rows]


def run_toolkit(args: argparse.Namespace, train_file: Path, out: Path, **train: object) -> dict[str, float]:
    """``finetune`` on the bench's setting; ``train`` adds or overrides ``train.*`` keys (e.g. ``cpu_dropout=False``)."""
    from tl_toolkit import _engine, finetune

    if args.clock == "cpu":  # the engine times its epochs with time.perf_counter: give it this process's CPU clock
        _engine.time = types.SimpleNamespace(perf_counter=time.process_time)  # type: ignore[assignment]
    recipe = {
        "name": f"bench-{args.strategy}", "seed": args.seed, "output_dir": str(out),
        "backbone": {"plugin": "bert", "model": MODEL},
        "data": {"format": "csv", "train": str(train_file), "eval": str(SST2 / "dev.tsv"),
                 "text_column": "sentence", "max_length": args.max_length},
        "strategy": {"plugin": args.strategy,
                     "options": {"target_modules": args.lora_targets} if args.strategy == "lora" else {}},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": LR[args.strategy],
                  "log_every_steps": 1000, **train},
    }
    result = finetune(recipe, quiet=True)
    return {"accuracy": result.metrics["accuracy"], "train_seconds": result.summary["train_seconds"]}


def run_trainer(args: argparse.Namespace, sentences: list[str], labels: list[int], out: Path) -> dict[str, float]:
    """What a practitioner writes by hand: Trainer defaults, the strategy applied with peft or requires_grad."""
    import datasets
    import numpy as np
    from tl_toolkit_plugins.bert import resolve_model
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    set_seed(args.seed)  # before the model, as the Trainer examples do: the new head's weights come from this seed
    path = resolve_model(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    if args.strategy == "head-only":
        model.base_model.requires_grad_(False)
    elif args.strategy == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16, lora_dropout=0.05,
                                                 target_modules=args.lora_targets))

    def tokenize(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        return tokenizer(batch["sentence"], truncation=True, max_length=args.max_length)

    dev_sentences, dev_labels = read_tsv(SST2 / "dev.tsv")
    train_ds = datasets.Dataset.from_dict({"sentence": sentences, "label": labels}).map(tokenize, batched=True)
    dev_ds = datasets.Dataset.from_dict({"sentence": dev_sentences, "label": dev_labels}).map(tokenize, batched=True)
    training_args = TrainingArguments(
        output_dir=str(out), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=2 * args.batch_size, learning_rate=LR[args.strategy], seed=args.seed,
        save_strategy="no", eval_strategy="no", report_to=[], logging_steps=1000, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=train_ds,
                      data_collator=DataCollatorWithPadding(tokenizer))
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    started = clock()
    trainer.train()
    seconds = clock() - started
    predictions = trainer.predict(dev_ds.remove_columns("sentence"))
    accuracy = float((np.argmax(predictions.predictions, -1) == np.array(dev_labels)).mean())
    return {"accuracy": accuracy, "train_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategy", choices=sorted(LR), default="full")
    parser.add_argument("--train-samples", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (both runs)")
    parser.add_argument("--lora-targets", type=lambda v: v.split(","), default=ALL_LINEAR,
                        help="LoRA target modules for both sides, comma-separated (default: every linear layer of "
                             "the blocks, as recipes/sst2_bert_lora.yaml)")
    parser.add_argument("--quick", action="store_true", help="1,000 training sentences: a check, not a figure")
    parser.add_argument("--no-trainer", action="store_true", help="tl_toolkit only")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: CPU seconds of this process, for a machine shared with other jobs")
    args = parser.parse_args()
    if args.quick:
        args.train_samples = 1_000
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)

    sentences, labels = read_tsv(SST2 / "train.tsv", args.train_samples)
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.tsv"
        with train_file.open("w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in zip(sentences, labels, strict=True)))
        rows = {"tl_toolkit": run_toolkit(args, train_file, Path(tmp) / "tl")}
        if not args.no_trainer:
            rows["Trainer"] = run_trainer(args, sentences, labels, Path(tmp) / "trainer")

    n = len(sentences) * args.epochs
    print(f"\n{MODEL}, strategy {args.strategy}: {len(sentences):,} SST-2 sentences x {args.epochs} epoch(s), "
          f"batch {args.batch_size}, lr {LR[args.strategy]}, max_length {args.max_length}, "
          f"{torch.get_num_threads()} threads, {args.clock} clock")
    print(f"{'run':<12} {'dev acc':>8} {'train s':>9} {'samples/s':>10}")
    for name, row in rows.items():
        print(f"{name:<12} {row['accuracy']:>8.4f} {row['train_seconds']:>9.1f} {n / row['train_seconds']:>10.1f}")
    if "Trainer" in rows:
        tl, hf = rows["tl_toolkit"], rows["Trainer"]
        print(f"speed-up (samples/s, tl_toolkit / Trainer): {hf['train_seconds'] / tl['train_seconds']:.2f}x; "
              f"accuracy difference: {(tl['accuracy'] - hf['accuracy']) * 100:+.1f} pt")


if __name__ == "__main__":
    main()
