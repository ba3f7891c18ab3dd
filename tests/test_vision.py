"""The ``resnet`` backbone in depth: image folders with bad files, timm-saved weights, image
pipelines (mixup, RandAugment), BatchNorm in transfer, LoRA on convolutions and its merge.

Models are timm's tiny ``test_resnet`` (0.5M parameters) unless the test is about an
architecture; images are 32 px at most, runs one epoch on a few dozen examples.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_tl

import tl_toolkit
from tl_toolkit import BackboneConfig, DataConfig, DataError, Task, open_image
from tl_toolkit.testing import weights_must_fit


def digits_recipe(out: Path, **backbone: Any) -> dict[str, Any]:
    """A one-epoch run on 40 built-in digit images: no files to read, seconds to train."""
    return {
        "name": "vision",
        "output_dir": str(out),
        "backbone": {"plugin": "resnet", "model": "test_resnet", "pretrained": False, **backbone},
        "data": {"format": "digits", "train": "train", "eval": "test", "image_size": 32, "classes": [0, 1, 2, 3],
                 "max_train_samples": 40, "max_eval_samples": 20},
        "strategy": {"plugin": "full"},
        "train": {"epochs": 1, "batch_size": 8, "lr": 1.0e-2},
    }


def _jpeg(path: Path, color: tuple[int, int, int], mode: str = "RGB") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (20, 20), color if mode == "RGB" else color[0]).save(path, format="JPEG")


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """``<class>/<image>.jpg`` for two classes, one grayscale image and one stray text file."""
    root = tmp_path / "photos"
    for name, color in (("cat", (220, 30, 30)), ("dog", (30, 30, 220))):
        for i in range(4):
            _jpeg(root / name / f"{i}.jpg", color)
    _jpeg(root / "dog" / "gray.jpg", (90, 90, 90), mode="L")
    (root / "cat" / "notes.txt").write_text("not an image\n")
    return root


# -- image folders: files that are not images, images that are broken -------------------


def test_non_image_is_skipped_and_corrupt_jpeg_stops_the_run_cli(photo_folder: Path, tmp_path: Path) -> None:
    good = (photo_folder / "cat" / "0.jpg").read_bytes()
    corrupt = photo_folder / "cat" / "broken.jpg"
    corrupt.write_bytes(good[: len(good) // 2])  # a JPEG cut short, as an interrupted copy leaves it
    out = tmp_path / "run"
    recipe = {
        "name": "corrupt",
        "output_dir": str(out),
        "backbone": {"plugin": "resnet", "model": "test_resnet", "pretrained": False},
        "data": {"format": "imagefolder", "train": str(photo_folder), "eval_fraction": 0.25, "image_size": 16},
        # The bad image is found in a DataLoader worker process, and still reported in one line.
        "train": {"epochs": 1, "batch_size": 16, "num_workers": 1},
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))

    proc = run_tl("run", tmp_path / "recipe.yaml", timeout=300)

    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "DataLoader worker" not in proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if "not images" in ln]
    assert len(warnings) == 1 and "skipped 1 files" in warnings[0], proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("tl run: error:")]
    assert len(errors) == 1, proc.stderr
    assert str(corrupt) in errors[0] and "image" in errors[0]
    assert str(photo_folder / "cat" / "0.jpg") not in proc.stderr
    assert not (out / "summary.json").exists()


def test_open_image_names_the_file_and_makes_rgb(photo_folder: Path) -> None:
    gray = open_image(str(photo_folder / "dog" / "gray.jpg"))
    assert gray.mode == "RGB" and gray.size == (20, 20)
    stored = open_image({"bytes": (photo_folder / "cat" / "1.jpg").read_bytes(), "path": None})
    assert stored.getpixel((10, 10))[0] > 200  # the red cat image, decoded from bytes
    with pytest.raises(DataError, match=r"notes\.txt: cannot read it as an image"):
        open_image(str(photo_folder / "cat" / "notes.txt"))
    with pytest.raises(DataError, match=r"missing\.jpg: cannot read it as an image \(FileNotFoundError"):
        open_image({"bytes": None, "path": str(photo_folder / "missing.jpg")})


def test_data_error_from_a_worker_keeps_only_the_message() -> None:
    # What torch's DataLoader hands the main process when a worker raised DataError("x.jpg: ...").
    wrapped = ("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               '  File "w.py", line 3, in fetch\n    raise DataError(msg)\n'
               "tl_toolkit._errors.DataError: /data/x.jpg: cannot read it as an image (OSError: truncated)\n")
    assert DataError(wrapped).problems == ["/data/x.jpg: cannot read it as an image (OSError: truncated)"]
    assert DataError("plain: message").problems == ["plain: message"]


def test_hf_image_dataset_with_image_column(tmp_path: Path) -> None:
    import datasets
    from PIL import Image

    colors = [(200, 20, 20), (20, 200, 20), (20, 20, 200)]
    rows = {"picture": [Image.new("L" if i % 5 == 0 else "RGB", (12, 12), colors[i % 3][0] if i % 5 == 0
                                  else colors[i % 3]) for i in range(30)],
            "kind": [i % 3 for i in range(30)]}
    features = datasets.Features({"picture": datasets.Image(),
                                  "kind": datasets.ClassLabel(names=["red", "green", "blue"])})
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(tmp_path / "ds")
    recipe = digits_recipe(tmp_path / "run")
    recipe["data"] = {"format": "hf", "name": str(tmp_path / "ds"), "train": "train", "image_column": "picture",
                      "label_column": "kind", "image_size": 16, "eval_fraction": 0.3}
    result = tl_toolkit.finetune(recipe, quiet=True)
    assert result.label_names == ["blue", "green", "red"]
    assert result.summary["num_train_examples"] + result.summary["num_eval_examples"] == 30


# -- weights saved by timm ----------------------------------------------------------------


@pytest.fixture(scope="module")
def timm_resnet50_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised ResNet-50 saved by timm (config.json + model.safetensors), 1000-class head."""
    import timm
    import torch
    from timm.models import save_for_hf

    torch.manual_seed(50)
    directory = tmp_path_factory.mktemp("timm-resnet50")
    save_for_hf(timm.create_model("resnet50"), str(directory), safe_serialization=True)
    return directory


@pytest.mark.slow
@pytest.mark.parametrize("source", ["weights-file", "model-directory"])
def test_resnet50_from_timm_weights_trains_saves_and_reloads_in_plain_timm(
    timm_resnet50_dir: Path, tmp_path: Path, source: str
) -> None:
    import timm
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "run"
    recipe = digits_recipe(out)
    if source == "weights-file":
        recipe["backbone"].update(model="resnet50", weights=str(timm_resnet50_dir / "model.safetensors"))
    else:
        recipe["backbone"].update(model=str(timm_resnet50_dir), pretrained=True)
    recipe["data"].update(max_train_samples=4, max_eval_samples=8)
    recipe["train"].update(batch_size=4, lr=1.0e-4)  # one optimizer step
    result = tl_toolkit.finetune(recipe, quiet=True)
    assert result.summary["total_params"] == 23_516_228  # ResNet-50 body + a 4-label head

    # One small AdamW step moved the file's weights a little; a fresh initialisation would be far off.
    start = load_file(str(timm_resnet50_dir / "model.safetensors"))
    saved = load_file(str(out / "model" / "model.safetensors"))
    for key in ("conv1.weight", "layer4.2.conv3.weight"):
        assert (saved[key] - start[key]).abs().max() < 1e-3, key
    assert saved["fc.weight"].shape == (4, 2048)

    # model/ loads with plain timm and predicts what the trained model predicts.
    with weights_must_fit("plain timm"):
        plain = timm.create_model(f"local-dir:{out / 'model'}", pretrained=True).eval()
    trained = result.model.eval()
    images = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(plain(images), trained(images))
    assert json.loads((out / "model" / "config.json").read_text())["label_names"] == ["0", "1", "2", "3"]


def test_model_directory_without_config_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(tl_toolkit.UserError, match=r"backbone.model: local model directory .* holds no config.json; give the folder a model was saved to"):
        tl_toolkit.finetune(digits_recipe(tmp_path / "run", model=str(tmp_path)), quiet=True)


# -- pipelines: RandAugment, mixup/cutmix -------------------------------------------------


def _backbone(**options: Any) -> Any:
    from plugins.resnet import ResNetBackbone

    backbone = ResNetBackbone(BackboneConfig(plugin="resnet", model="test_resnet", pretrained=False, options=options),
                              DataConfig(format="digits", train="train", image_size=16))
    model = backbone.build(Task(["a", "b", "c"]))
    return backbone, model


def test_mixup_makes_soft_targets_for_even_training_batches_only() -> None:
    import torch

    backbone, _ = _backbone(mixup=0.8, cutmix=1.0)
    torch.manual_seed(0)
    batch = {"pixel_values": torch.randn(8, 3, 16, 16), "labels": torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])}
    mixed = backbone.train_batch({k: v.clone() for k, v in batch.items()})  # timm mixes in place
    assert mixed["labels"].shape == (8, 3)
    torch.testing.assert_close(mixed["labels"].sum(-1), torch.ones(8))
    assert not torch.equal(mixed["pixel_values"], batch["pixel_values"])
    # Each soft target is spread over the image's own label and that of its mirror in the batch.
    own = mixed["labels"].gather(1, batch["labels"][:, None]).squeeze(1)
    mirror = mixed["labels"].gather(1, batch["labels"].flip(0)[:, None]).squeeze(1)
    torch.testing.assert_close(torch.where(batch["labels"] == batch["labels"].flip(0), own, own + mirror),
                               torch.ones(8))
    odd = {"pixel_values": torch.randn(3, 3, 16, 16), "labels": torch.tensor([0, 1, 2])}
    assert backbone.train_batch(odd) is odd
    plain, _ = _backbone()
    assert plain.train_batch(batch) is batch


def test_run_with_randaugment_mixup_cutmix_and_label_smoothing(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The loss sees mixed (soft) targets, and smooths them by ``train.label_smoothing`` on top."""
    import torch
    from tl_toolkit_plugins.classification import ClassificationTask

    calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    loss = ClassificationTask.loss

    def spy(self: ClassificationTask, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> Any:
        value = loss(self, logits, labels, reduction)
        calls.append((logits.detach().float(), labels.detach(), value.detach()))
        return value

    monkeypatch.setattr(ClassificationTask, "loss", spy)
    recipe = digits_recipe(tmp_path / "run", options={"auto_augment": "rand-m9-mstd0.5", "mixup": 0.8,
                                                      "cutmix": 1.0, "hflip": 0.0})
    recipe["train"]["label_smoothing"] = 0.1
    result = tl_toolkit.finetune(recipe, quiet=True)
    soft = [c for c in calls if c[1].ndim == 2]  # training batches: mixup/cutmix made the targets soft
    assert len(soft) == 5  # 40 images / batch 8
    for logits, targets, value in soft:
        torch.testing.assert_close(targets.sum(-1), torch.ones(len(targets)))
        assert ((targets > 0) & (targets < 1)).any()  # mixed, not one-hot
        smoothed = 0.9 * targets + 0.1 / 4  # 4 classes
        expected = -(smoothed * logits.log_softmax(-1)).sum(-1)
        torch.testing.assert_close(value, expected if value.ndim else expected.mean(), atol=1e-5, rtol=1e-5)
    assert math.isfinite(result.metrics["loss"])
    backbone, _ = _backbone(auto_augment="rand-m9-mstd0.5")
    assert "RandAugment" in repr(backbone.train_transform) and "RandAugment" not in repr(backbone.eval_transform)


def test_resnet_option_errors_name_the_option() -> None:
    from plugins.resnet import ResNetBackbone

    with pytest.raises(tl_toolkit.UserError, match=r"^backbone.options.auto_augment: .*'bogus'"):
        _backbone(auto_augment="bogus")
    problems = ResNetBackbone.option_problems({"mixup": -1, "freeze_bnn": True})
    assert any(p.startswith("backbone.options.mixup:") for p in problems)
    assert any("freeze_bnn" in p and "Did you mean 'freeze_bn'" in p for p in problems)


# -- BatchNorm in transfer ------------------------------------------------------------------


@pytest.mark.parametrize("freeze_bn", [False, True])
def test_freeze_bn_keeps_running_statistics_while_weights_train(tmp_path: Path, freeze_bn: bool) -> None:
    import timm
    import torch
    from safetensors.torch import load_file

    result = tl_toolkit.finetune(digits_recipe(tmp_path / "run", options={"freeze_bn": freeze_bn}), quiet=True)
    saved = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    torch.manual_seed(0)
    fresh = timm.create_model("test_resnet").state_dict()  # BatchNorm starts at mean 0, variance 1
    stats = [k for k in saved if k.endswith(("running_mean", "running_var"))]
    unchanged = all(torch.equal(saved[k], fresh[k]) for k in stats)
    assert unchanged == freeze_bn
    assert not torch.equal(saved["conv1.0.weight"], fresh["conv1.0.weight"])  # the weights did train
    assert result.summary["trainable_params"] == result.summary["total_params"]


# -- LoRA on convolutions, and its merge --------------------------------------------------


def test_lora_default_targets_are_the_last_two_stages_3x3_convs() -> None:
    backbone, model = _backbone()
    assert backbone.lora_targets(model) == ["layer3.0.conv2", "layer4.0.conv1", "layer4.0.conv2"]
    backbone, model = _backbone(lora_stages=["stem"])
    with pytest.raises(tl_toolkit.UserError, match=r"lora_stages: \['stem'\] hold no convolutions.*'layer1'"):
        backbone.lora_targets(model)


def test_resnext_lora_targets_avoid_grouped_convolutions() -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from plugins.resnet import ResNetBackbone

    backbone = ResNetBackbone(BackboneConfig(plugin="resnet", model="resnext50_32x4d", pretrained=False),
                              DataConfig(format="digits", train="train", image_size=32))
    model = backbone.build(Task(["a", "b", "c"]))
    targets = backbone.lora_targets(model)
    convs = dict(model.named_modules())
    assert len(targets) == 2 * (6 + 3) + 2  # conv1 and conv3 of each block in layer3 and layer4, and 2 downsamples
    assert all(convs[t].groups == 1 and convs[t].kernel_size == (1, 1) for t in targets)
    # Adapters on these merge back into a plain model (peft refuses to merge into grouped convolutions).
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=targets, modules_to_save=["fc"], init_lora_weights=False))
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = lora.eval()(images)
        torch.testing.assert_close(lora.merge_and_unload()(images), expected, atol=1e-4, rtol=1e-4)


def test_lora_run_merges_into_a_plain_timm_model(tmp_path: Path) -> None:
    import timm
    import torch
    from peft import PeftModel

    recipe = digits_recipe(tmp_path / "run")
    recipe["strategy"] = {"plugin": "lora", "options": {"r": 4}}
    result = tl_toolkit.finetune(recipe, quiet=True)
    adapter = json.loads((tmp_path / "run" / "model" / "adapter_config.json").read_text())
    assert adapter["modules_to_save"] == ["fc"]

    loaded = tl_toolkit.load_model_dir(tmp_path / "run", merge=True)
    merged = loaded.model
    assert not isinstance(merged, PeftModel) and type(merged).__name__ == "ResNet"
    assert not any("lora" in name for name, _ in merged.named_modules())
    # Saved in timm's format, the merged model is a plain timm model with the trained head.
    loaded.backbone.save(merged, tmp_path / "merged", Task(loaded.label_names))
    with weights_must_fit("plain timm"):
        plain = timm.create_model(f"local-dir:{tmp_path / 'merged'}", pretrained=True).eval()
    images = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(plain(images), result.model.eval()(images), atol=1e-5, rtol=1e-4)


def test_other_timm_classifiers_by_name(tmp_path: Path) -> None:
    recipe = digits_recipe(tmp_path / "run", model="test_convnext")
    recipe["strategy"] = {"plugin": "head-only"}
    result = tl_toolkit.finetune(recipe, quiet=True)
    assert result.summary["trainable_params"] == 4 * 64 + 4  # head.fc of test_convnext: 64 features -> 4 labels
