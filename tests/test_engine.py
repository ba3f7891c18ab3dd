"""The training loop's knobs: schedules with warmup, accumulation, precision, sentence pairs."""

from __future__ import annotations

import json
import math
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from conftest import SST2

from tl_toolkit import finetune

DIGITS: dict[str, Any] = {
    "name": "engine",
    "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False, "options": {"hflip": 0.0}},
    "data": {"format": "digits", "train": "train", "eval": "test", "image_size": 32,
             "max_train_samples": 64, "max_eval_samples": 32},
    "train": {"epochs": 2, "batch_size": 8, "lr": 1.0e-3, "log_every_steps": 1},
}


def _rows(out: Path, kind: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == kind]


@pytest.mark.parametrize("scheduler", ["linear", "cosine"])
def test_warmup_then_decay(scheduler: str, tmp_path: Path) -> None:
    out = tmp_path / scheduler
    finetune(DIGITS, output_dir=str(out), train={"scheduler": scheduler, "warmup_ratio": 0.25}, quiet=True)
    lrs = [r["lr"] for r in _rows(out, "train")]
    assert len(lrs) == 16  # 64 examples / batch 8 x 2 epochs, logged every step
    peak = lrs.index(max(lrs))
    assert peak == 3 and max(lrs) == pytest.approx(1.0e-3)  # 4 warmup steps of 16
    assert all(a < b for a, b in pairwise(lrs[: peak + 1]))
    assert all(a >= b for a, b in pairwise(lrs[peak:]))
    assert lrs[-1] < 0.1e-3


def test_gradient_accumulation_counts_optimizer_steps(tmp_path: Path) -> None:
    plain, accumulated = tmp_path / "plain", tmp_path / "accum"
    finetune(DIGITS, output_dir=str(plain), quiet=True)
    finetune(DIGITS, output_dir=str(accumulated), train={"grad_accum_steps": 4}, quiet=True)
    assert [r["step"] for r in _rows(plain, "eval")] == [8, 16]
    assert [r["step"] for r in _rows(accumulated, "eval")] == [2, 4]


def test_bf16_mixed_precision_computes_in_bf16_and_trains(tmp_path: Path, conv_dtypes: list[Any]) -> None:
    import torch

    result = finetune(DIGITS, output_dir=str(tmp_path / "bf16"), train={"mixed_precision": "bf16"}, quiet=True)
    assert conv_dtypes.count(torch.bfloat16) >= 16, set(conv_dtypes)  # every training step's convolutions ran in bf16
    assert math.isfinite(result.metrics["loss"])
    losses = [r["train_loss"] for r in _rows(tmp_path / "bf16", "eval")]
    assert losses[1] < losses[0]


def test_sentence_pairs_train_and_predict(tmp_path: Path, tiny_bert_dir: Path) -> None:
    """Pairs go through the tokenizer as two segments: token_type_ids mark the second one."""
    sentences = [ln.split("\t") for ln in (SST2 / "dev.tsv").read_text().splitlines()[1:61]]
    rows = ["premise,hypothesis,label"]
    for i, (text, label) in enumerate(sentences):  # does the second sentence share the first one's sentiment?
        other, other_label = sentences[(i * 7 + 3) % len(sentences)]
        rows.append(f'"{text.strip()}","{other.strip()}",{int(label == other_label)}')
    data = tmp_path / "pairs.csv"
    data.write_text("\n".join(rows) + "\n")
    result = finetune(
        {
            "name": "pairs",
            "output_dir": str(tmp_path / "run"),
            "backbone": {"plugin": "bert", "model": str(tiny_bert_dir)},
            "data": {"format": "csv", "train": str(data), "eval": str(data), "text_column": "premise",
                     "text_pair_column": "hypothesis", "max_length": 64},
            "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3},
        },
        quiet=True,
    )
    assert result.summary["num_train_examples"] == 60
    from tl_toolkit import load_model_dir, predict
    from tl_toolkit._predict import read_inputs

    loaded = load_model_dir(result.output_dir)
    ds, _ = read_inputs([str(data)], loaded)
    batch = loaded.backbone.collate([loaded.backbone.preprocess(ds.add_column("labels", [0] * len(ds)),
                                                                train=False)[0]])
    assert set(batch["token_type_ids"][0].tolist()) == {0, 1}
    assert len(predict(result.output_dir, [str(data)])) == 60


def test_sgd_optimizer_keeps_momentum_and_trains(tmp_path: Path) -> None:
    import torch

    out = tmp_path / "sgd"
    finetune(DIGITS, output_dir=str(out), train={"optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4}, quiet=True)
    [checkpoint] = (out / "checkpoints").iterdir()
    state = torch.load(checkpoint / "optimizer.bin", weights_only=False)
    assert [g["momentum"] for g in state["param_groups"]] == [0.9] * len(state["param_groups"])
    kinds = {key for per_param in state["state"].values() for key in per_param}
    assert kinds == {"momentum_buffer"}  # AdamW would keep exp_avg and exp_avg_sq
    losses = [r["train_loss"] for r in _rows(out, "eval")]
    assert losses[1] < losses[0]
