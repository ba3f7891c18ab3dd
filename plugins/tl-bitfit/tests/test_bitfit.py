"""Tests of the ``bitfit`` strategy as an installed third-party plugin.

What trains after ``apply`` on tl_toolkit's real backbones (a ResNet-18 and a tiny BERT, both
built from a config, nothing downloaded), the options, the registration through the entry point
(``tl list``), and a real ``tl run`` through the CLI on scikit-learn's digits.

Everything needed is in this file: no ``conftest`` module is imported, so these tests collect next
to tl_toolkit's own ``tests/`` in one pytest session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tl_bitfit import BitFitOptions, BitFitStrategy

from tl_toolkit.testing import run_card, tiny_bert

# Everything here runs offline, as CI does.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LABELS = ["zero", "one", "two", "three", "four"]


def run_tl(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """The real CLI (``python -m tl_toolkit``) in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "tl_toolkit", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )


def backbone(plugin: str, model: str, **data: Any) -> Any:
    """A backbone of tl_toolkit, looked up through the registry like a run does."""
    from tl_toolkit import BackboneConfig, DataConfig
    from tl_toolkit.testing import load_plugin

    cls = load_plugin("backbone", plugin)
    return cls(BackboneConfig(plugin=plugin, model=model, pretrained=False), DataConfig(**data))


def trainable(model: Any) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def norm_weights(model: Any) -> set[str]:
    """Qualified names of the normalisation layers' weights (scales)."""
    from torch import nn

    return {f"{name}.weight" for name, m in model.named_modules()
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)) and m.weight is not None}


def numel(model: Any, names: set[str]) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if name in names)


# ---------------------------------------------------------------------------------------------
# What trains


@pytest.mark.parametrize("norm", [False, True])
def test_resnet18_trains_only_biases_and_head(norm: bool) -> None:
    from tl_toolkit import Task

    bb = backbone("resnet", "resnet18", format="digits", image_size=32)
    model = bb.build(Task(LABELS))
    names = {name for name, _ in model.named_parameters()}
    assert bb.head_names(model) == ["fc"]
    biases = {n for n in names if n.endswith(".bias")}
    head = {"fc.weight", "fc.bias"}
    expected = biases | head | (norm_weights(model) if norm else set())

    out = BitFitStrategy({"norm": norm}).apply(model, bb)

    assert out is model
    assert trainable(model) == expected
    # ResNet-18's convolutions have no bias: what trains are the BatchNorm biases (4,800 of them)
    # and the 512 -> 5 head, plus the 4,800 BatchNorm scales with norm: true.
    assert numel(model, biases - head) == 4800
    assert numel(model, trainable(model)) == (12165 if norm else 7365)
    assert all(not p.requires_grad for n, p in model.named_parameters() if ".conv" in f".{n}")


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT with a 24-token vocabulary, built from a config and saved like a hub model."""
    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.mark.parametrize("norm", [False, True])
def test_tiny_bert_trains_only_biases_and_head(tiny_bert_dir: Path, norm: bool) -> None:
    from tl_toolkit import Task

    bb = backbone("bert", str(tiny_bert_dir), format="csv")
    model = bb.build(Task(["negative", "positive"]))
    names = {name for name, _ in model.named_parameters()}
    assert bb.head_names(model) == ["classifier"]
    biases = {n for n in names if n.endswith(".bias")}
    head = {"classifier.weight", "classifier.bias"}
    expected = biases | head | (norm_weights(model) if norm else set())

    BitFitStrategy({"norm": norm}).apply(model, bb)

    assert trainable(model) == expected
    # Every projection has a bias here: query/key/value/output, the feed-forward, the pooler.
    assert "bert.encoder.layer.0.attention.self.query.bias" in expected
    assert "bert.encoder.layer.0.attention.self.query.weight" not in expected
    assert "bert.embeddings.word_embeddings.weight" not in expected
    assert ("bert.embeddings.LayerNorm.weight" in expected) is norm
    assert numel(model, trainable(model)) < numel(model, names) / 10


def test_default_parameter_groups_keep_weight_decay_off_biases() -> None:
    from tl_toolkit import Task

    bb = backbone("resnet", "resnet18", format="digits", image_size=32)
    model = BitFitStrategy().apply(bb.build(Task(LABELS)), bb)
    groups = BitFitStrategy().parameter_groups(model, weight_decay=0.01)
    decayed = {id(p) for g in groups if g["weight_decay"] for p in g["params"]}
    assert decayed == {id(model.fc.weight)}
    assert sum(len(g["params"]) for g in groups) == len(trainable(model))


# ---------------------------------------------------------------------------------------------
# Options, plugin contract, registration


def test_options() -> None:
    assert BitFitOptions().norm is False
    assert BitFitStrategy.option_problems({}) == []
    assert BitFitStrategy.option_problems({"norm": True}) == []
    [problem] = BitFitStrategy.option_problems({"nrom": True})
    assert problem == "strategy.options.nrom: unknown option. Did you mean 'norm'? Valid options: norm"
    [problem] = BitFitStrategy.option_problems({"norm": "maybe"})
    assert problem.startswith("strategy.options.norm: ")


def test_satisfies_the_plugin_contract() -> None:
    from tl_toolkit import PLUGIN_API_VERSION
    from tl_toolkit.testing import check_plugin

    check_plugin("strategy", BitFitStrategy)
    assert BitFitStrategy.plugin_api == PLUGIN_API_VERSION


def test_import_does_not_import_torch() -> None:
    code = ("import sys, tl_bitfit; from tl_toolkit.testing import load_plugin; "
            "load_plugin('strategy', 'bitfit'); print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tl_list_shows_bitfit_from_its_own_distribution(tmp_path: Path) -> None:
    result = run_tl("list", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [r for r in json.loads(result.stdout) if r["kind"] == "strategy" and r["name"] == "bitfit"]
    assert rows == [{
        "kind": "strategy", "group": "tl_toolkit.strategies", "name": "bitfit", "dist": "tl-bitfit",
        "version": "0.1.0", "value": "tl_bitfit:BitFitStrategy",
        "description": "Train only the bias terms and the head (BitFit); every weight matrix stays frozen.",
        "error": None,
    }]

    result = run_tl("list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    strategies = result.stdout.split("strategy plugins (tl_toolkit.strategies):\n", 1)[1]
    line = next(ln for ln in strategies.splitlines() if ln.split()[:1] == ["bitfit"])
    assert line.split()[1:4] == ["tl-bitfit", "0.1.0", "Train"]
    assert "failed plugins" not in result.stdout


# ---------------------------------------------------------------------------------------------
# A real run through the CLI


def digits_recipe(tmp_path: Path) -> Path:
    """A recipe for a 1-epoch run of a random ResNet-18 on 64 digits; the strategy comes by override."""
    recipe = {
        "name": "digits-bitfit",
        "output_dir": str(tmp_path / "run"),
        "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False, "options": {"hflip": 0.0}},
        "data": {"format": "digits", "train": "train", "eval": "test", "image_size": 32,
                 "max_train_samples": 64, "max_eval_samples": 32},
        "strategy": {"plugin": "full"},
        "train": {"epochs": 1, "batch_size": 16, "lr": 1.0e-2},
    }
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def test_tl_run_on_digits(tmp_path: Path) -> None:
    import timm

    recipe = digits_recipe(tmp_path)
    result = run_tl("run", recipe, "strategy.plugin=bitfit", cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    out = tmp_path / "run"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["strategy"] == "bitfit"
    assert (summary["num_train_examples"], summary["num_eval_examples"]) == (64, 32)
    # Counted on a fresh ResNet-18 with the run's head: its bias terms and its fc layer.
    reference = timm.create_model("resnet18", pretrained=False, num_classes=len(summary["label_names"]))
    expected = sum(p.numel() for name, p in reference.named_parameters()
                   if name.endswith(".bias") or name.startswith("fc."))
    assert summary["trainable_params"] == expected
    assert summary["total_params"] == sum(p.numel() for p in reference.parameters())
    assert "+ bitfit" in result.stdout
    # Saved like a `full` run, in timm's own format.
    assert (out / "model" / "model.safetensors").is_file()
    assert json.loads((out / "model" / "tl_toolkit.json").read_text())["strategy"]["plugin"] == "bitfit"

    # `tl predict` loads it back through the strategy's default load.
    from PIL import Image
    from sklearn.datasets import load_digits

    images = []
    for i, pixels in enumerate(load_digits().images[:3]):
        images.append(tmp_path / f"digit{i}.png")
        Image.fromarray((pixels * 16).clip(0, 255).astype("uint8"), mode="L").save(images[-1])
    result = run_tl("predict", out, *images, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 3
    # ... and the model card's own code, plain timm, predicts the same labels.
    labels, _ = run_card(out / "model" / "README.md", [str(p) for p in images])
    assert [r["label"] for r in rows] == labels


def test_tl_run_names_a_misspelt_option(tmp_path: Path) -> None:
    recipe = digits_recipe(tmp_path)
    result = run_tl("run", recipe, "strategy.plugin=bitfit", "strategy.options.include_nrom=true", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "strategy.options.include_nrom: unknown option." in result.stderr
    assert "Valid options: norm" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was loaded or written
