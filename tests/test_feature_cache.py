"""train.feature_cache: a frozen backbone's features are computed once, keyed, and train the same head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import image_overrides, text_overrides

from tl_toolkit import finetune, load_model_dir


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("TL_TOOLKIT_CACHE", str(cache))
    return cache


def _text_run(tiny_bert_dir: Path, out: Path, *extra: str) -> Any:
    recipe = {"name": "cache", "backbone": {"plugin": "bert", "model": "-"}, "data": {"format": "csv"},
              "strategy": {"plugin": "head-only"}, "train": {"epochs": 2, "batch_size": 16, "lr": 1e-2}}
    return finetune(recipe, [*text_overrides(tiny_bert_dir, out, n_train=96, n_eval=48), *extra], quiet=True)


def test_cached_head_matches_the_uncached_run(tiny_bert_dir: Path, tmp_path: Path, _cache_in_tmp: Path) -> None:
    # Plain shuffled batches on both sides: length grouping needs token counts, which cached features no longer have.
    cached = _text_run(tiny_bert_dir, tmp_path / "cached", "train.group_by_length=false")
    plain = _text_run(tiny_bert_dir, tmp_path / "plain", "train.feature_cache=off", "train.group_by_length=false")
    assert cached.summary["feature_cache"]["used"] and cached.summary["feature_cache"]["hits"] == [False, False]
    assert plain.summary["feature_cache"] == {"used": False, "reason": "train.feature_cache is off"}
    assert len(list(_cache_in_tmp.glob("*.safetensors"))) == 2  # train and eval
    # Same head, same data order: the same weights and metrics, up to float noise.
    torch.testing.assert_close(cached.model.classifier.weight, plain.model.classifier.weight, atol=1e-4, rtol=1e-3)
    assert cached.metrics["accuracy"] == pytest.approx(plain.metrics["accuracy"])
    assert cached.metrics["loss"] == pytest.approx(plain.metrics["loss"], abs=1e-4)
    # The saved model is the whole model: loading it back reproduces the trained head.
    loaded = load_model_dir(cached.output_dir)
    torch.testing.assert_close(loaded.model.classifier.weight, cached.model.classifier.weight.cpu())

    again = _text_run(tiny_bert_dir, tmp_path / "again")
    assert again.summary["feature_cache"]["hits"] == [True, True]
    assert again.metrics == pytest.approx(cached.metrics)


def test_a_change_to_any_key_part_is_a_new_cache_file(tiny_bert_dir: Path, tmp_path: Path,
                                                      _cache_in_tmp: Path) -> None:
    _text_run(tiny_bert_dir, tmp_path / "a", "train.epochs=1")
    files = len(list(_cache_in_tmp.glob("*.safetensors")))
    assert files == 2
    # preprocessing (token budget), data (another sample), weights (one tensor nudged): each misses. Not
    # backbone.pretrained=false: the fixture's weights are themselves a seed-0 initialisation, the same one.
    from safetensors.torch import load_file, save_file

    state = {f"bert.{k}": v.clone() for k, v in load_file(str(tiny_bert_dir / "model.safetensors")).items()}
    state["bert.embeddings.word_embeddings.weight"] += 0.01
    save_file(state, str(tmp_path / "nudged.safetensors"))
    for i, change in enumerate(["data.max_length=16", "data.max_train_samples=80",
                                f"backbone.weights={tmp_path / 'nudged.safetensors'}"]):
        result = _text_run(tiny_bert_dir, tmp_path / f"b{i}", "train.epochs=1", change)
        assert result.summary["feature_cache"]["hits"][0] is False, change
        now = len(list(_cache_in_tmp.glob("*.safetensors")))
        assert now > files, change
        files = now


def test_image_augmentation_turns_the_cache_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = {"name": "img", "backbone": {"plugin": "resnet", "model": "-"}, "data": {"format": "imagefolder"},
              "strategy": {"plugin": "head-only"}, "train": {"epochs": 1, "batch_size": 16, "lr": 1e-2}}
    augmented = finetune(recipe, image_overrides(tmp_path / "aug", n_train=32, n_eval=16))
    assert not augmented.summary["feature_cache"]["used"]
    assert "feature cache off: training-time augmentation" in capsys.readouterr().out
    fixed = finetune(recipe, [*image_overrides(tmp_path / "fixed", n_train=32, n_eval=16),
                              "backbone.options.augment=false"], quiet=True)
    assert fixed.summary["feature_cache"]["used"]
    loaded = load_model_dir(fixed.output_dir)
    torch.testing.assert_close(loaded.model.fc.weight, fixed.model.fc.weight.cpu())
