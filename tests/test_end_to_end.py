"""Every registered backbone x strategy, end to end through the real CLI, on tiny models.

Each run must exit 0, write the contract's output files, and leave a ``model/``
that the plain libraries (transformers / peft / timm) load and that predicts
the same labels as ``tl predict``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import image_overrides, plain_predictions, predict_inputs, run_tl, text_overrides

from tl_toolkit._registry import registry

BASE_RECIPES = {
    "bert": {
        "name": "e2e-text",
        "backbone": {"plugin": "bert", "model": "placeholder"},
        "data": {"format": "csv", "text_column": "sentence", "label_column": "label", "max_length": 64},
        "train": {"epochs": 2, "batch_size": 16, "lr": 1.0e-3, "log_every_steps": 2},
    },
    "resnet": {
        "name": "e2e-image",
        "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False},
        "data": {"format": "imagefolder"},
        "train": {"epochs": 2, "batch_size": 16, "lr": 1.0e-3, "log_every_steps": 2},
    },
}

BUILTIN_BACKBONES = [b for b in registry.names("backbone") if b in BASE_RECIPES]
# distill needs a finished teacher run: tests/test_more_strategies.py runs it end to end with one.
# contrastive needs pooled embeddings and fits its head in its own stage: tests/test_contrastive.py.
STRATEGIES = [s for s in registry.names("strategy") if s not in ("distill", "contrastive")]


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _overrides(backbone: str, tiny_bert_dir: Path, out: Path) -> list[str]:
    return text_overrides(tiny_bert_dir, out) if backbone == "bert" else image_overrides(out)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("backbone", BUILTIN_BACKBONES)
def test_backbone_x_strategy(backbone: str, strategy: str, tmp_path: Path, tiny_bert_dir: Path) -> None:
    out = tmp_path / "run"
    recipe = _write(tmp_path, {**BASE_RECIPES[backbone], "strategy": {"plugin": strategy}})
    proc = run_tl("run", recipe, *_overrides(backbone, tiny_bert_dir, out), "--quiet")
    assert proc.returncode == 0, proc.stderr

    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["eval"]) >= {"accuracy", "f1_macro", "loss"}
    assert 0 < summary["trainable_params"] <= summary["total_params"]
    if strategy in ("head-only", "lora"):
        assert summary["trainable_params"] < summary["total_params"] / 2
    assert summary["train_seconds"] > 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["kind"] == "eval"] == [1, 2]
    last = [r for r in rows if r["kind"] == "eval"][-1]
    assert summary["eval"] == last["eval"]  # the saved model is the last epoch's (no train.best_metric)
    assert any(r["kind"] == "train" for r in rows)
    resolved = yaml.safe_load((out / "recipe.yaml").read_text())
    assert resolved["strategy"]["plugin"] == strategy and resolved["train"]["epochs"] == 2
    assert (out / "report.md").read_text().count("learning_curves.png") == 1
    from PIL import Image

    assert Image.open(out / "learning_curves.png").size == (1320, 504)  # what is drawn: test_report.py
    assert any((out / "checkpoints").iterdir())

    inputs = predict_inputs(backbone, tmp_path)
    proc = run_tl("predict", out, *inputs)
    assert proc.returncode == 0, proc.stderr
    predicted = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(predicted) == (20 if backbone == "bert" else 10)
    assert all(0.0 < p["score"] <= 1.0 for p in predicted)
    assert [p["label"] for p in predicted] == plain_predictions(out / "model", inputs)


def test_head_only_freezes_backbone_and_keeps_batchnorm_in_eval(tmp_path: Path) -> None:
    """Feature transfer: the backbone's weights and BatchNorm statistics do not move."""
    import torch

    from tl_toolkit import finetune, load_model_dir

    common = {
        "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False},
        "data": {"format": "digits", "train": "train", "eval": "test", "image_size": 32,
                 "max_train_samples": 64, "max_eval_samples": 32},
        "train": {"epochs": 1, "batch_size": 16, "lr": 1e-2},
    }
    source = finetune({**common, "name": "src", "output_dir": str(tmp_path / "src")}, quiet=True)
    target = finetune(
        {**common, "name": "tgt", "output_dir": str(tmp_path / "tgt"),
         "backbone": {**common["backbone"], "init_from": str(tmp_path / "src")},
         "strategy": {"plugin": "head-only"}},
        quiet=True,
    )
    before = load_model_dir(source.output_dir).model.state_dict()
    after = target.model.state_dict()
    body = [k for k in before if not k.startswith("fc.")]
    assert any("running_mean" in k for k in body)
    for key in body:
        torch.testing.assert_close(after[key].cpu(), before[key].cpu(), msg=f"{key} changed")
    assert not torch.equal(after["fc.weight"].cpu(), before["fc.weight"].cpu())
