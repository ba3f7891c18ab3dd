"""``backbone.weights``: starting a ResNet from a local weights file, and reading such files safely.

The file's weights are random but seeded, with non-default BatchNorm statistics,
so a run that really loaded them is told apart from one that initialised its own.
Runs are head-only: the body stays exactly as it was loaded and is saved as is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from conftest import run_tl

import tl_toolkit
from tl_toolkit import UserError, read_state_dict

if TYPE_CHECKING:
    import torch


def random_resnet_state(arch: str, seed: int) -> dict[str, torch.Tensor]:
    """A timm model's state dict from a seeded random initialisation, BN statistics included."""
    import timm
    import torch

    torch.manual_seed(seed)
    state = timm.create_model(arch, pretrained=False).state_dict()
    for key, value in state.items():
        if key.endswith("running_mean"):
            value.copy_(torch.randn(value.shape) * 0.1)
        elif key.endswith("running_var"):
            value.copy_(torch.rand(value.shape) + 0.5)
    return {k: v.detach().clone().contiguous() for k, v in state.items()}


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    return random_resnet_state("resnet18", seed=1234)


def save_weights(state: dict[str, torch.Tensor], path: Path, kind: str) -> Path:
    import torch
    from safetensors.torch import save_file

    if kind == "safetensors":
        save_file(state, str(path))
    elif kind == "pth":
        torch.save(state, path)
    elif kind == "checkpoint":  # a training checkpoint that wraps the state dict
        torch.save({"state_dict": state, "epoch": 3, "lr": 0.1}, path)
    else:
        raise AssertionError(kind)
    return path


SUFFIX = {"safetensors": ".safetensors", "pth": ".pth", "checkpoint": ".pth"}


def weights_recipe(out: Path, weights: Path | str, *, model: str = "resnet18", pretrained: bool = False,
                   strategy: str = "head-only") -> dict[str, Any]:
    return {
        "name": "weights",
        "output_dir": str(out),
        "backbone": {"plugin": "resnet", "model": model, "pretrained": pretrained, "weights": str(weights),
                     "options": {"hflip": 0.0}},
        "data": {"format": "digits", "train": "train", "eval": "test", "image_size": 32, "classes": [0, 1, 2],
                 "max_train_samples": 32, "max_eval_samples": 16},
        "strategy": {"plugin": strategy},
        "train": {"epochs": 1, "batch_size": 16, "lr": 1.0e-2},
    }


# -- runs that start from a weights file ------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "pretrained"),
    [("safetensors", False), ("safetensors", True), ("pth", False), ("checkpoint", True)],
)
def test_run_starts_from_weights_file(
    tmp_path: Path, resnet18_state: dict[str, torch.Tensor], kind: str, pretrained: bool
) -> None:
    import torch
    from safetensors.torch import load_file

    weights = save_weights(resnet18_state, tmp_path / f"resnet18{SUFFIX[kind]}", kind)
    out = tmp_path / "run"
    # pretrained: true with a weights file must not try the hub (offline here): the file wins.
    result = tl_toolkit.finetune(weights_recipe(out, weights, pretrained=pretrained), quiet=True)

    saved = load_file(str(out / "model" / "model.safetensors"))
    body = [k for k in resnet18_state if not k.startswith("fc.")]
    assert {k for k in saved if not k.startswith("fc.")} == set(body)
    assert any(k.endswith("running_var") for k in body)
    for key in body:
        assert torch.equal(saved[key], resnet18_state[key]), f"{key} is not the file's"
    # The file's 1000-class head is dropped: a fresh head for the run's 3 labels.
    assert saved["fc.weight"].shape == (3, 512) and saved["fc.bias"].shape == (3,)
    assert result.summary["trainable_params"] == 512 * 3 + 3
    assert result.label_names == ["0", "1", "2"]


def _write_recipe(tmp_path: Path, recipe: dict[str, Any]) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_weights_of_another_architecture_cli(tmp_path: Path) -> None:
    weights = save_weights(random_resnet_state("resnet34", seed=0), tmp_path / "resnet34.safetensors",
                           "safetensors")
    out = tmp_path / "run"
    proc = run_tl("run", _write_recipe(tmp_path, weights_recipe(out, weights)), "--quiet", timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "backbone.weights" in proc.stderr and str(weights) in proc.stderr
    assert "missing" not in proc.stderr and "another shape" not in proc.stderr
    # resnet34's stages have 3, 4, 6, 3 blocks, resnet18's 2 each: the extra blocks' tensors are listed,
    # weights first, with their count.
    unexpected = proc.stderr.split("unexpected, e.g. [", 1)[1].split("]", 1)[0]
    assert "'layer1.2.bn1.bias'" in unexpected and "running_mean" not in unexpected
    count = int(proc.stderr.split(" unexpected, e.g.", 1)[0].rsplit(" ", 1)[1])
    assert count == sum(1 for k in random_resnet_state("resnet34", seed=0)
                        if k.startswith(("layer1.2.", "layer2.2.", "layer2.3.", "layer3.2.", "layer3.3.",
                                         "layer3.4.", "layer3.5.", "layer4.2.")))
    assert not (out / "summary.json").exists()


def test_weights_with_mismatched_shapes(tmp_path: Path) -> None:
    weights = save_weights(random_resnet_state("resnet50", seed=0), tmp_path / "resnet50.pth", "pth")
    with pytest.raises(UserError) as err:
        tl_toolkit.finetune(weights_recipe(tmp_path / "run", weights), quiet=True)
    message = str(err.value)
    assert message.startswith("backbone.weights:") and "'resnet18'" in message
    assert "with another shape" in message and "layer1.0.conv1.weight (64, 64, 1, 1) vs (64, 64, 3, 3)" in message
    assert "unexpected" in message and "layer1.0.conv3.weight" in message  # resnet50 has all of resnet18's keys


@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".bin"])
def test_weights_file_that_is_not_weights_cli(tmp_path: Path, suffix: str) -> None:
    weights = tmp_path / f"notes{suffix}"
    weights.write_text("these are not the weights you are looking for\n" * 20)
    out = tmp_path / "run"
    proc = run_tl("run", _write_recipe(tmp_path, weights_recipe(out, weights)), "--quiet", timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "backbone.weights" in proc.stderr and str(weights) in proc.stderr
    assert not (out / "summary.json").exists()


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"backbone\.weights: file .*absent\.safetensors.* not found"):
        tl_toolkit.finetune(weights_recipe(tmp_path / "run", tmp_path / "absent.safetensors"), quiet=True)


# -- read_state_dict ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["safetensors", "pth", "checkpoint"])
def test_read_state_dict(tmp_path: Path, kind: str) -> None:
    import torch

    state = {"a.weight": torch.arange(6.0).reshape(2, 3), "a.bias": torch.ones(2), "n": torch.tensor(7)}
    path = save_weights(state, tmp_path / f"w{SUFFIX[kind]}", kind)
    read = read_state_dict(path)
    assert set(read) == set(state)
    for key in state:
        assert torch.equal(read[key], state[key])


def test_read_state_dict_model_wrapper(tmp_path: Path) -> None:
    import torch

    torch.save({"model": {"w": torch.zeros(2)}, "optimizer": {}}, tmp_path / "ckpt.pt")
    assert set(read_state_dict(tmp_path / "ckpt.pt")) == {"w"}


def test_read_state_dict_names_its_key(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^backbone\.init_weights: file .* not found"):
        read_state_dict(tmp_path / "absent.pth", key="backbone.init_weights")


def test_read_state_dict_of_a_tensor_is_not_a_state_dict(tmp_path: Path) -> None:
    import torch

    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(UserError, match="holds a Tensor, not a state dict"):
        read_state_dict(tmp_path / "tensor.pth")


class Payload:
    """A custom object inside a checkpoint: unpickling it would need this module's code."""

    def __init__(self) -> None:
        self.value = 1


class Exploit:
    """Unpickling this runs ``os.makedirs(marker)``: code execution by reading a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.makedirs, (str(self.marker),)


def test_read_state_dict_refuses_custom_objects(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "custom.pth"
    torch.save({"w": torch.zeros(2), "extra": Payload()}, path)
    with pytest.raises(UserError) as err:
        read_state_dict(path)
    message = str(err.value)
    assert message.startswith(f"backbone.weights: {path} holds pickled Python objects") and "state_dict()" in message


def test_read_state_dict_never_runs_pickled_code(tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "code-ran"
    path = tmp_path / "exploit.pth"
    torch.save({"w": torch.zeros(2), "extra": Exploit(marker)}, path)
    assert not marker.exists()
    with pytest.raises(UserError, match=r"backbone\.weights"):
        read_state_dict(path)
    assert not marker.exists(), "reading the weights file ran the code pickled in it"
    # The file does carry code: a plain, unsafe torch.load runs it.
    torch.load(path, weights_only=False)
    assert marker.is_dir()
