"""tl_toolkit against a ``run_ner.py``-style Hugging Face Trainer script: all-MiniLM-L6-v2 on CoNLL-2003.

The same model, training sentences, epochs, batch size, learning rate,
max_length and first-sub-token alignment, run once through
``tl_toolkit.finetune`` (``data.task: token_classification``) and once
through ``transformers.Trainer`` as the ``run_ner.py`` example writes it:
``AutoModelForTokenClassification``, tags aligned to the first sub-token of
each word (-100 elsewhere), ``DataCollatorForTokenClassification``, seqeval's
entity-level F1 on the predictions. Both run in this process, one after the
other. Prints test-split F1, train seconds and training sentences/s for both,
and the ratio.

Full size (the issue's acceptance figures; minutes per run on a CPU)::

    python -m bench.ner_vs_trainer --strategy full
    python -m bench.ner_vs_trainer --strategy lora

``--quick`` trains on 500 sentences and tests on 200: a check, not a figure.
``--clock cpu`` times both training loops in CPU seconds of this process, for a
machine shared with other jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import types
from pathlib import Path

import torch

CONLL = Path(__file__).resolve().parents[2] / "shared" / "data" / "conll2003"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
LR = {"full": 5e-5, "lora": 5e-4}


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def run_toolkit(args: argparse.Namespace, train_file: Path, test_file: Path, out: Path) -> dict[str, float]:
    """``tl run`` as a user writes it: padding-free batches, bf16 steps where the CPU has them, fused AdamW and one
    host sync per step come with the engine's defaults."""
    from tl_toolkit import _engine, finetune

    if args.clock == "cpu":  # the engine times its epochs with time.perf_counter: give it this process's CPU clock
        _engine.time = types.SimpleNamespace(perf_counter=time.process_time)  # type: ignore[assignment]
    recipe = {
        "name": f"ner-bench-{args.strategy}", "seed": args.seed, "output_dir": str(out),
        "backbone": {"plugin": "bert", "model": MODEL},
        "data": {"format": "json", "train": str(train_file), "eval": str(test_file), "task": "token_classification",
                 "text_column": "tokens", "label_column": "ner_tags", "max_length": args.max_length},
        "strategy": {"plugin": args.strategy},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "log_every_steps": 1000,
                  "group_by_length": not args.no_group_by_length, "cpu_dropout": not args.torch_dropout,
                  **({"padding_free": False} if args.padded else {}),
                  **({"mixed_precision": args.mixed_precision} if args.mixed_precision else {}),
                  **({"weight_decay": args.weight_decay} if args.weight_decay is not None else {})},
    }
    result = finetune(recipe, quiet=True)
    return {"f1": result.metrics["f1"], "train_seconds": result.summary["train_seconds"]}


def run_trainer(args: argparse.Namespace, train_rows: list[dict], test_rows: list[dict], out: Path) -> dict[
    str, float
]:
    """What ``run_ner.py`` does, with Trainer defaults; LoRA through peft as its documentation shows."""
    import datasets
    import numpy as np
    from seqeval.metrics import f1_score
    from tl_toolkit_plugins.bert import resolve_model
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    set_seed(args.seed)  # before the model, as run_ner.py does: the new head's weights come from this seed
    label_list = sorted({t for r in train_rows for t in r["ner_tags"]})
    label_to_id = {t: i for i, t in enumerate(label_list)}
    path = resolve_model(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(label_list), id2label=dict(enumerate(label_list)), label2id=label_to_id)
    if args.strategy == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type=TaskType.TOKEN_CLS, r=8, lora_alpha=16,
                                                 lora_dropout=0.05, target_modules=["query", "value"]))

    def tokenize_and_align_labels(examples: dict[str, list]) -> dict[str, list]:
        tokenized = tokenizer(examples["tokens"], truncation=True, max_length=args.max_length,
                              is_split_into_words=True)
        labels = []
        for i, tags in enumerate(examples["ner_tags"]):
            previous, ids = None, []
            for word in tokenized.word_ids(batch_index=i):
                ids.append(-100 if word is None or word == previous else label_to_id[tags[word]])
                previous = word
            labels.append(ids)
        tokenized["labels"] = labels
        return tokenized

    def dataset(rows: list[dict]) -> datasets.Dataset:
        ds = datasets.Dataset.from_dict({"tokens": [r["tokens"] for r in rows], "ner_tags": [r["ner_tags"]
                                                                                            for r in rows]})
        return ds.map(tokenize_and_align_labels, batched=True, remove_columns=["tokens", "ner_tags"])

    training_args = TrainingArguments(
        output_dir=str(out), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=2 * args.batch_size, learning_rate=args.lr, seed=args.seed,
        save_strategy="no", eval_strategy="no", report_to=[], logging_steps=1000, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset(train_rows),
                      data_collator=DataCollatorForTokenClassification(tokenizer))
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    started = clock()
    trainer.train()
    seconds = clock() - started
    output = trainer.predict(dataset(test_rows))
    predictions = np.argmax(output.predictions, axis=2)
    truth = [[label_list[t] for t in row if t != -100] for row in output.label_ids]
    preds = [[label_list[p] for p, t in zip(prow, trow, strict=True) if t != -100]
             for prow, trow in zip(predictions, output.label_ids, strict=True)]
    return {"f1": float(f1_score(truth, preds)), "train_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategy", choices=sorted(LR), default="full")
    parser.add_argument("--lr", type=float, default=None, help="learning rate of both sides (default: full 5e-5, "
                                                               "lora 5e-4)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (both runs)")
    parser.add_argument("--quick", action="store_true", help="500 training and 200 test sentences: a check")
    parser.add_argument("--no-trainer", action="store_true", help="tl_toolkit only")
    parser.add_argument("--torch-dropout", action="store_true",
                        help="tl_toolkit side: PyTorch's dropout and transformers' attention, not the CPU dropout")
    parser.add_argument("--no-group-by-length", action="store_true",
                        help="tl_toolkit side, with --padded: random padded batches")
    parser.add_argument("--padded", action="store_true", help="tl_toolkit side: train.padding_free: false")
    parser.add_argument("--mixed-precision", choices=["auto", "no", "bf16"],
                        help="tl_toolkit side: train.mixed_precision (default: the recipe default, auto)")
    parser.add_argument("--weight-decay", type=float, default=None,
                        help="tl_toolkit side (default: the recipe's 0.01; the Trainer's default is 0.0)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: CPU seconds of this process, for a machine shared with other jobs")
    args = parser.parse_args()
    args.lr = args.lr or LR[args.strategy]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)

    train_rows = read_jsonl(CONLL / "train.jsonl", 500 if args.quick else None)
    test_rows = read_jsonl(CONLL / "test.jsonl", 200 if args.quick else None)
    with tempfile.TemporaryDirectory() as tmp:
        train_file, test_file = Path(tmp) / "train.jsonl", Path(tmp) / "test.jsonl"
        train_file.write_text("".join(json.dumps(r) + "\n" for r in train_rows))
        test_file.write_text("".join(json.dumps(r) + "\n" for r in test_rows))
        rows = {"tl_toolkit": run_toolkit(args, train_file, test_file, Path(tmp) / "tl")}
        if not args.no_trainer:
            rows["Trainer"] = run_trainer(args, train_rows, test_rows, Path(tmp) / "trainer")

    n = len(train_rows) * args.epochs
    print(f"\n{MODEL}, strategy {args.strategy}: {len(train_rows):,} CoNLL-2003 train sentences x {args.epochs} "
          f"epoch(s), test {len(test_rows):,} sentences, batch {args.batch_size}, lr {args.lr}, max_length "
          f"{args.max_length}, {torch.get_num_threads()} threads, {args.clock} clock")
    print(f"{'run':<12} {'test F1':>8} {'train s':>9} {'sentences/s':>12}")
    for name, row in rows.items():
        print(f"{name:<12} {row['f1']:>8.4f} {row['train_seconds']:>9.1f} {n / row['train_seconds']:>12.1f}")
    if "Trainer" in rows:
        tl, hf = rows["tl_toolkit"], rows["Trainer"]
        print(f"speed-up (sentences/s, tl_toolkit / Trainer): {hf['train_seconds'] / tl['train_seconds']:.2f}x; "
              f"F1 difference: {(tl['f1'] - hf['f1']) * 100:+.2f} pt")


if __name__ == "__main__":
    main()
