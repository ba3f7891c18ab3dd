"""Head-only training with the feature cache against a plain ``transformers.Trainer``, side by side.

Text: all-MiniLM-L6-v2 (``bert`` plugin) on SST-2 sentences. Images: ResNet-18
on the CIFAR-10 folders (random initialisation: no pretrained weights can be
fetched offline, so its accuracy is low on both sides; the timing is the point).
Each side freezes the backbone and trains the same head with the same batch
size, learning rate and epochs. tl_toolkit starts from an empty cache (the
first run pays for the features); the Trainer runs the frozen backbone every
epoch. Prints dev accuracy and wall seconds of both, and the speed ratio.

Usage: python bench/head_only_cache.py [--train-samples 20000] [--epochs 10] [--only text|image]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from tl_toolkit import finetune
from tl_toolkit._quiet import quiet_libraries

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def _tl_side(kind: str, args: argparse.Namespace, out: Path) -> tuple[float, float]:
    if kind == "text":
        backbone = {"plugin": "bert", "model": MINILM}
        data = {"format": "csv", "train": str(DATA / "sst2" / "train.tsv"), "eval": str(DATA / "sst2" / "dev.tsv"),
                "text_column": "sentence", "label_column": "label"}
    else:
        backbone = {"plugin": "resnet", "model": "resnet18", "pretrained": False, "options": {"augment": False}}
        data = {"format": "imagefolder", "train": str(DATA / "cifar10" / "train"),
                "eval": str(DATA / "cifar10" / "test"), "image_size": 32}
    data.update(max_train_samples=args.train_samples, max_eval_samples=args.eval_samples)
    recipe = {"name": f"bench-{kind}", "seed": 0, "output_dir": str(out), "backbone": backbone, "data": data,
              "strategy": {"plugin": "head-only"},
              "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "log_every_steps": 50}}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TL_TOOLKIT_CACHE"] = cache  # cold: the features are computed inside the timed run
        start = time.perf_counter()
        result = finetune(recipe, quiet=True)
        seconds = time.perf_counter() - start
    return result.metrics["accuracy"], seconds


class _TimmForTrainer(torch.nn.Module):
    """A timm classifier with the (pixel_values, labels) -> {loss, logits} interface Trainer expects."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.model(pixel_values)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
        return out


def _text_data(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    import datasets
    from tl_toolkit_plugins.bert import resolve_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    path = resolve_model(MINILM)
    tokenizer = AutoTokenizer.from_pretrained(path)
    files = {"train": str(DATA / "sst2" / "train.tsv"), "eval": str(DATA / "sst2" / "dev.tsv")}
    raw = datasets.load_dataset("csv", data_files=files, delimiter="\t")
    train = raw["train"].shuffle(seed=0).select(range(min(args.train_samples, len(raw["train"]))))
    evals = raw["eval"].select(range(min(args.eval_samples or len(raw["eval"]), len(raw["eval"]))))

    def tok(batch: dict[str, list[Any]]) -> Any:
        return tokenizer(batch["sentence"], truncation=True, max_length=128)

    train, evals = (d.map(tok, batched=True, remove_columns=["sentence"]) for d in (train, evals))
    set_seed(0)  # before the model: the new head's weights come from this seed, not from what ran before
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith("classifier."))
    from transformers import DataCollatorWithPadding

    return model, (train, evals), DataCollatorWithPadding(tokenizer)


def _image_data(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    import datasets
    import timm
    from timm.data import create_transform, resolve_data_config

    net = timm.create_model("resnet18", pretrained=False, num_classes=10)
    cfg = resolve_data_config({}, model=net)
    cfg.update(input_size=(3, 32, 32), crop_pct=1.0)
    transform = create_transform(**cfg, is_training=False)
    for name, param in net.named_parameters():
        param.requires_grad_(name.startswith("fc."))

    def apply(batch: dict[str, list[Any]]) -> dict[str, Any]:
        return {"pixel_values": [transform(img.convert("RGB")) for img in batch["image"]], "labels": batch["label"]}

    splits = []
    for split, n in (("train", args.train_samples), ("test", args.eval_samples)):
        ds = datasets.load_dataset("imagefolder", data_dir=str(DATA / "cifar10" / split), split="train")
        ds = ds.shuffle(seed=0).select(range(min(n or len(ds), len(ds))))
        splits.append(ds.with_transform(apply))
    return _TimmForTrainer(net), tuple(splits), None


def _trainer_side(kind: str, args: argparse.Namespace, out: Path) -> tuple[float, float]:
    import numpy as np
    from transformers import Trainer, TrainingArguments

    start = time.perf_counter()
    model, (train, evals), collator = (_text_data if kind == "text" else _image_data)(args)
    training_args = TrainingArguments(
        output_dir=str(out), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=2 * args.batch_size, learning_rate=args.lr, save_strategy="no",
        eval_strategy="no", report_to=[], logging_steps=50, remove_unused_columns=kind == "text",
        disable_tqdm=True, seed=0, use_cpu=not torch.cuda.is_available(),
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=train, data_collator=collator)
    trainer.train()
    predictions = trainer.predict(evals)
    seconds = time.perf_counter() - start
    logits = predictions.predictions[0] if isinstance(predictions.predictions, tuple) else predictions.predictions
    accuracy = float((np.argmax(logits, -1) == predictions.label_ids).mean())
    return accuracy, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-samples", type=int, default=20000)
    parser.add_argument("--eval-samples", type=int, default=None, help="default: the whole dev/test split")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--only", choices=["text", "image"], help="run one of the two comparisons")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quiet_libraries(True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.train_samples} train examples, "
          f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}")
    for kind in [args.only] if args.only else ["text", "image"]:
        with tempfile.TemporaryDirectory() as tmp:
            tl_acc, tl_s = _tl_side(kind, args, Path(tmp) / "tl")
            hf_acc, hf_s = _trainer_side(kind, args, Path(tmp) / "trainer")
        label = "MiniLM-L6 / SST-2" if kind == "text" else "ResNet-18 (random init) / CIFAR-10"
        print(f"\n{label}")
        print(f"{'side':<28} {'dev accuracy':>12} {'wall s':>9}")
        print(f"{'tl_toolkit (feature cache)':<28} {tl_acc:>12.4f} {tl_s:>9.1f}")
        print(f"{'transformers.Trainer':<28} {hf_acc:>12.4f} {hf_s:>9.1f}")
        print(f"speed-up: {hf_s / tl_s:.1f}x   accuracy difference: {tl_acc - hf_acc:+.4f}")


if __name__ == "__main__":
    main()
