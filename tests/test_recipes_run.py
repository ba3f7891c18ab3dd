"""The committed recipes, run through the real CLI on local stand-ins.

Online users run them against hub models and data sets; here the same files
run on the packaged all-MiniLM-L6-v2, the local SST-2 and CIFAR-10 copies,
and a ResNet-18 from random initialisation (no ImageNet weights offline).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, image_overrides, plain_predictions, predict_inputs, run_tl, text_overrides

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("strategy", ["full", "head-only", "lora"])
def test_sst2_recipe_on_minilm(strategy: str, tmp_path: Path, minilm_dir: Path) -> None:
    out = tmp_path / "run"
    proc = run_tl(
        "run", ROOT / f"recipes/sst2_bert_{strategy}.yaml",
        *text_overrides(minilm_dir, out, n_train=200, n_eval=100), "train.epochs=1", "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_train_examples"] == 200 and summary["num_eval_examples"] == 100
    assert summary["total_params"] > 22_000_000  # MiniLM-L6: 22.7M parameters

    inputs = predict_inputs("bert", tmp_path)
    proc = run_tl("predict", out, *inputs)
    assert proc.returncode == 0, proc.stderr
    labels = [json.loads(line)["label"] for line in proc.stdout.splitlines()]
    assert labels == plain_predictions(out / "model", inputs)


@pytest.mark.parametrize(
    ("recipe", "strategy"),
    [
        ("imagenet-pretrained_resnet50_head-only.yaml", "head-only"),
        ("imagenet-pretrained_resnet50_full.yaml", "full"),
        ("imagenet-pretrained_resnet50_lora.yaml", "lora"),
    ],
)
def test_cifar10_recipe_on_resnet18(recipe: str, strategy: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_tl(
        "run", ROOT / "recipes" / recipe, *image_overrides(out, n_train=200, n_eval=100),
        f"strategy.plugin={strategy}", "train.epochs=1", "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_train_examples"] == 200
    assert summary["label_names"] == sorted(p.name for p in (ROOT.parent / "shared/data/cifar10/train").iterdir())

    inputs = predict_inputs("resnet", tmp_path)
    proc = run_tl("predict", out, *inputs)
    assert proc.returncode == 0, proc.stderr
    labels = [json.loads(line)["label"] for line in proc.stdout.splitlines()]
    assert labels == plain_predictions(out / "model", inputs)


def test_quickstart_transfer_beats_scratch(tmp_path: Path) -> None:
    """The README's quickstart: digits 0-4 -> 5-9; the transferred model beats the same model from scratch."""
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    proc = run_tl("run", "recipes/quickstart.yaml", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "runs/quickstart/summary.json").read_text())
    transferred = summary["eval"]["accuracy"]
    scratch = summary["baselines"]["scratch"]["eval"]["accuracy"]
    assert transferred > scratch, (transferred, scratch)
    assert summary["transfer_gain"]["scratch"]["accuracy"] == pytest.approx(transferred - scratch, abs=1e-5)
    assert summary["source"].endswith("runs/quickstart-source/model")
    assert (tmp_path / "runs/quickstart-source/summary.json").is_file()  # the source recipe ran first
    report = (tmp_path / "runs/quickstart/report.md").read_text()
    assert "baseline: scratch" in report and "Transfer gain over scratch" in report
