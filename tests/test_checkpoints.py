"""Checkpoints: keep-last and keep-best, half-written saves, and a loss that stops being a number."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from conftest import SST2

import tl_toolkit
from tl_toolkit._checkpoint import STATE_FILE, TrainState, latest_checkpoint
from tl_toolkit._errors import UserError
from tl_toolkit._registry import registry


def _recipe(bert: Path, out: Path, **train: Any) -> dict[str, Any]:
    return {
        "name": "ckpt",
        "seed": 1,
        "output_dir": str(out),
        "backbone": {"plugin": "bert", "model": str(bert)},
        "data": {"format": "csv", "train": str(SST2 / "train.tsv"), "eval": str(SST2 / "dev.tsv"),
                 "text_column": "sentence", "max_train_samples": 24, "max_eval_samples": 16, "max_length": 16},
        "train": {"epochs": 3, "batch_size": 8, "lr": 5.0e-3, "log_every_steps": 1, **train},
    }


def test_keeps_the_newest_and_the_best(tiny_bert_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = tl_toolkit.finetune(
        _recipe(tiny_bert_dir, out, checkpoint_every_steps=2, keep_checkpoints=1, best_metric="loss"), quiet=True
    )
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    best_epoch = min(evals, key=lambda r: r["eval"]["loss"])["epoch"]
    kept = {p.name for p in (out / "checkpoints").iterdir()}
    assert kept == {"epoch-3", f"epoch-{best_epoch}"}  # the step checkpoints and other epochs pruned
    assert result.summary["best_checkpoint"] == {
        "checkpoint": f"epoch-{best_epoch}", "metric": "loss", "value": evals[best_epoch - 1]["eval"]["loss"]}


def test_half_written_checkpoints_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    (root / "epoch-1").mkdir(parents=True)
    (root / "epoch-1" / STATE_FILE).write_text(json.dumps({"epoch": 1, "step": 3}))
    (root / ".step-5.tmp").mkdir()  # killed while accelerate wrote into it
    (root / ".step-5.tmp" / STATE_FILE).write_text(json.dumps({"epoch": 1, "batch": 2, "step": 5}))
    (root / "step-4").mkdir()  # no state file: never completed
    assert latest_checkpoint(root) == root / "epoch-1"
    (root / "step-5").mkdir()
    (root / "step-5" / STATE_FILE).write_text(json.dumps({"epoch": 1, "batch": 2, "step": 5}))
    assert latest_checkpoint(root) == root / "step-5"  # inside epoch 2 comes after the end of epoch 1


@pytest.fixture
def nan_at_third_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bert backbone's logits turn NaN on the third training batch, as a diverging run's would."""
    backbone = registry.get("backbone", "bert")
    forward = backbone.forward
    calls = {"train": 0}

    def poisoned(self: Any, model: Any, batch: dict[str, Any]) -> Any:
        logits = forward(self, model, batch)
        if model.training:
            calls["train"] += 1
            if calls["train"] == 3:
                return logits * math.nan
        return logits

    monkeypatch.setattr(backbone, "forward", poisoned)


@pytest.mark.usefixtures("nan_at_third_step")
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_bert_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(UserError) as err:
        tl_toolkit.finetune(_recipe(tiny_bert_dir, out, checkpoint_every_steps=1, keep_checkpoints=2), quiet=True)
    message = str(err.value)
    assert "loss became nan at step 3 " in message and "train.skip_nonfinite" in message
    assert str(out / "checkpoints" / "step-2") in message
    assert latest_checkpoint(out / "checkpoints") == out / "checkpoints" / "step-2"
    assert not (out / "summary.json").exists()


@pytest.mark.usefixtures("nan_at_third_step")
def test_skip_nonfinite_skips_the_step_and_finishes(tiny_bert_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = tl_toolkit.finetune(_recipe(tiny_bert_dir, out, skip_nonfinite=True), quiet=True)
    assert all(math.isfinite(v) for v in result.metrics.values())
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in rows if r["kind"] == "train"]
    assert 3 not in train_steps and train_steps[:3] == [1, 2, 4]  # step 3 skipped, no NaN logged
    assert TrainState.read(out / "checkpoints" / "epoch-3").skipped_steps == 1
