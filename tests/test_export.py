"""``tl export``: merged LoRA models that plain transformers / timm / onnxruntime load, predicting as ``tl predict``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CIFAR10, SST2, plain_predictions, tiny_text_recipe

from tl_toolkit import predict
from tl_toolkit._cli import main

N_EXAMPLES = 100


def _recipe(backbone: str, out: Path, model: Path) -> dict:
    if backbone == "bert":
        return tiny_text_recipe("export-text", out, model)
    return {
        "name": "export-image", "output_dir": str(out),
        "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False},
        "data": {"format": "imagefolder", "train": str(CIFAR10 / "train"), "eval": str(CIFAR10 / "test"),
                 "image_size": 32, "max_train_samples": 32, "max_eval_samples": 16},
        "strategy": {"plugin": "lora"},
        "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3},
    }


def _inputs(backbone: str, tmp_path: Path) -> list[str]:
    """100 examples: dev sentences in a text file, or 10 test images of each CIFAR-10 class."""
    if backbone == "bert":
        lines = [ln.split("\t")[0] for ln in (SST2 / "dev.tsv").read_text().splitlines()[1:N_EXAMPLES + 1]]
        file = tmp_path / "sentences.txt"
        file.write_text("\n".join(lines) + "\n")
        return [str(file)]
    return [str(p) for d in sorted((CIFAR10 / "test").iterdir()) for p in sorted(d.glob("*.jpg"))[:10]]


@pytest.fixture(scope="module", params=["bert", "resnet"])
def lora_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path):
    from tl_toolkit import finetune

    out = tmp_path_factory.mktemp(f"lora-{request.param}")
    finetune(_recipe(request.param, out, tiny_bert_dir), quiet=True)
    return request.param, out


def test_merged_export_loads_with_plain_library_and_predicts_like_tl_predict(lora_run, tmp_path: Path) -> None:
    backbone, run = lora_run
    fmt = "hf" if backbone == "bert" else "timm"
    target = tmp_path / "plain"
    assert main(["export", str(run), "--format", fmt, "--merge-lora", "--output", str(target)]) == 0
    assert not (target / "adapter_config.json").exists() and not (target / "base").exists()  # no peft left
    inputs = _inputs(backbone, tmp_path)
    expected = [row["label"] for row in predict(run, inputs)]
    assert len(expected) == N_EXAMPLES
    # strategy "full": the plain library alone, no peft wrapping.
    assert plain_predictions(target, inputs) == expected
    meta = json.loads((target / "export.json").read_text())
    assert meta["merged_lora"] is True and meta["format"] == fmt


def test_onnx_export_runs_in_onnxruntime_like_tl_predict(lora_run, tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime

    backbone, run = lora_run
    target = tmp_path / "onnx"
    assert main(["export", str(run), "--format", "onnx", "--merge-lora", "--output", str(target)]) == 0
    meta = json.loads((target / "export.json").read_text())
    assert meta["onnx_check"].startswith("onnxruntime") and meta["onnx_max_abs_diff"] < 1e-3
    session = onnxruntime.InferenceSession(str(target / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs = _inputs(backbone, tmp_path)
    if backbone == "bert":
        from transformers import AutoTokenizer

        texts = Path(inputs[0]).read_text().splitlines()
        feed = dict(AutoTokenizer.from_pretrained(target)(texts, padding=True, truncation=True, max_length=64,
                                                          return_tensors="np"))
    else:
        from PIL import Image
        from timm.data import create_transform

        pre = json.loads((target / "preprocessing.json").read_text())
        transform = create_transform(input_size=pre["input_size"], mean=pre["mean"], std=pre["std"],
                                     crop_pct=pre["crop_pct"], interpolation=pre["interpolation"])
        feed = {"pixel_values": np.stack([transform(Image.open(p).convert("RGB")).numpy() for p in inputs])}
    (logits,) = session.run(["logits"], {k: v.astype(np.int64) if v.dtype.kind == "i" else v for k, v in feed.items()})
    labels = [meta["label_names"][i] for i in logits.argmax(-1)]
    assert labels == [row["label"] for row in predict(run, inputs)]


def test_export_errors_are_one_line_and_keep_existing_files(lora_run, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    backbone, run = lora_run
    fmt = "hf" if backbone == "bert" else "timm"
    other = "timm" if backbone == "bert" else "hf"
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    cases = [
        (["--format", fmt], "--merge-lora"),
        (["--format", other, "--merge-lora"], f"cannot export to {other!r}"),
        (["--format", fmt, "--merge-lora", "--output", str(taken)], "not empty"),
    ]
    for args, expected in cases:
        assert main(["export", str(run), *args]) == 2
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1, err
    assert (taken / "keep.txt").read_text() == "mine"
    # A disk that fills while the export is written: one sentence, and no half-written folder stays.
    import errno

    from tl_toolkit._pipeline import load_model_dir

    backbone_type = type(load_model_dir(run).backbone)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backbone_type, "export", full)
        assert main(["export", str(run), "--format", fmt, "--merge-lora", "--output", str(tmp_path / "ex")]) == 2
    assert "no space left on the device" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
