"""No code runs by surprise: safe YAML, weights as safetensors, remote code only when asked, no network offline."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import SST2

import tl_toolkit
from tl_toolkit._cli import main
from tl_toolkit._recipe import BackboneConfig, DataConfig
from tl_toolkit._registry import registry


def test_a_recipe_cannot_construct_python_objects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran"
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    assert main(["validate", str(recipe)]) == 2
    assert "evil.yaml" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize("trusted", [True, False])
def test_trust_remote_code_reaches_transformers_only_when_set_and_warns(
    trusted: bool, tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    recwarn: pytest.WarningsRecorder,
) -> None:
    """What the backbone hands to every ``from_pretrained`` (build and reload), and one warning when it is true."""
    import transformers

    from tl_toolkit import Task

    seen: list[tuple[str, Any]] = []
    for name in ("AutoTokenizer", "AutoConfig", "AutoModel", "AutoModelForSequenceClassification"):
        cls = getattr(transformers, name)

        def spy(*args: Any, _name: str = name, _load: Any = cls.from_pretrained, **kwargs: Any) -> Any:
            caller = sys._getframe(1).f_globals["__name__"]
            if caller.startswith(("tl_toolkit", "tl_toolkit_plugins")):  # not transformers' calls to itself
                seen.append((_name, kwargs.get("trust_remote_code", "not given")))
            return _load(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    backbone = registry.get("backbone", "bert")(
        BackboneConfig(plugin="bert", model=str(tiny_bert_dir), options={"trust_remote_code": trusted}),
        DataConfig(format="csv", train="-"),
    )
    task = Task(["neg", "pos"])
    backbone.save(backbone.build(task), tmp_path / "saved", task)
    backbone.load(tmp_path / "saved")
    assert [n for n, _ in seen] == ["AutoTokenizer", "AutoConfig", "AutoModelForSequenceClassification",
                                    "AutoTokenizer", "AutoModelForSequenceClassification"]
    assert [flag for _, flag in seen] == [trusted] * 5
    warned = [str(w.message) for w in recwarn if "trust_remote_code" in str(w.message)]
    assert warned == ([f"backbone.options.trust_remote_code is true: {str(tiny_bert_dir)!r} may run its own Python "
                       f"code in this process; set it only for models whose code you have read or trust"]
                      if trusted else [])


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record (and refuse) every attempt to open a network connection."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network access in a test that must stay offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return attempts


def test_offline_run_touches_no_network_and_saves_safetensors(
    no_network: list[Any], tiny_bert_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    tl_toolkit.finetune({
        "name": "offline", "output_dir": str(out),
        "backbone": {"plugin": "bert", "model": str(tiny_bert_dir)},
        "data": {"format": "csv", "train": str(SST2 / "train.tsv"), "eval": str(SST2 / "dev.tsv"),
                 "text_column": "sentence", "max_train_samples": 16, "max_eval_samples": 8, "max_length": 16},
        "strategy": {"plugin": "lora"},
        "train": {"epochs": 1, "batch_size": 8},
    }, quiet=True)
    assert no_network == []
    pickles = [p for p in out.rglob("*") if p.suffix in (".bin", ".pth", ".pt")]
    # Model weights are safetensors, in model/ and in the checkpoint; only accelerate's optimizer and
    # scheduler states are torch pickles, and they read back without running code.
    assert {p.name for p in out.rglob("*.safetensors")} == {"adapter_model.safetensors", "model.safetensors"}
    assert sorted(p.name for p in pickles) == ["optimizer.bin", "scheduler.bin"]
    for path in pickles:
        assert isinstance(torch.load(path, weights_only=True), dict)
