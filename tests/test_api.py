"""The Python API: ``finetune`` with dict / Recipe / file recipes and keyword overrides,
``predict``, ``load_model_dir``, and source -> target transfer with ``backbone.init_from``.

Runs use a randomly initialised ResNet-18 on scikit-learn's 8x8 digits at 32 px:
a few seconds each on a CPU.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import tl_toolkit
from tl_toolkit import BackboneConfig, DataConfig, Recipe, RecipeError, StrategyConfig, TrainConfig, UserError

DIGITS = [str(d) for d in range(10)]


def image_recipe(out: Path, name: str = "api", **sections: dict[str, Any]) -> dict[str, Any]:
    """A tiny image recipe as a dict; ``sections`` are merged into its sections."""
    recipe: dict[str, Any] = {
        "name": name,
        "output_dir": str(out),
        "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False, "options": {"hflip": 0.0}},
        "data": {"format": "digits", "train": "train", "eval": "test", "image_size": 32,
                 "max_train_samples": 64, "max_eval_samples": 32},
        "train": {"epochs": 2, "batch_size": 16, "lr": 1.0e-3},
    }
    for key, values in sections.items():
        recipe[key] = {**recipe.get(key, {}), **values}
    return copy.deepcopy(recipe)


def eval_rows(out: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "eval"]


def write_digit_pngs(folder: Path, digits: list[int]) -> list[Path]:
    """8x8 digit images from scikit-learn, one PNG each, as a user would have them."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, d in enumerate(digits):
        index = int(np.flatnonzero(bunch.target == d)[i])
        path = folder / f"{i:02d}-digit{d}.png"
        Image.fromarray(np.clip(bunch.images[index] * 16, 0, 255).astype("uint8"), mode="L").save(path)
        paths.append(path)
    return paths


def assert_same_weights(a: dict[str, Any], b: dict[str, Any], keys: list[str]) -> None:
    import torch

    assert keys
    for key in keys:
        torch.testing.assert_close(a[key].cpu(), b[key].cpu(), rtol=0, atol=0, msg=f"{key} differs")


# -- finetune -------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["nested", "dunder", "dotted"])
def test_finetune_dict_with_keyword_overrides(tmp_path: Path, style: str) -> None:
    from torch import nn

    out = tmp_path / "run"
    recipe = image_recipe(out)  # 2 epochs; each override style brings it to 1
    overrides: dict[str, Any] = {
        "nested": {"train": {"epochs": 1}},
        "dunder": {"train__epochs": 1},
        "dotted": {"train.epochs": 1},
    }[style]
    result = tl_toolkit.finetune(recipe, quiet=True, **overrides)

    assert result.output_dir == out
    summary = json.loads((out / "summary.json").read_text())
    assert result.summary == summary
    assert result.metrics == summary["eval"]
    assert set(result.metrics) >= {"accuracy", "f1_macro", "loss"}
    assert summary["epochs"] == 1 and len(eval_rows(out)) == 1
    assert {k: eval_rows(out)[0]["eval"][k] for k in result.metrics} == result.metrics  # the one epoch's eval
    resolved = yaml.safe_load((out / "recipe.yaml").read_text())
    # The override is merged into the section: the other train keys stay.
    assert resolved["train"]["epochs"] == 1 and resolved["train"]["batch_size"] == 16
    assert resolved["train"]["lr"] == 1.0e-3
    assert summary["num_train_examples"] == 64 and summary["num_eval_examples"] == 32
    assert isinstance(result.model, nn.Module)
    assert result.model.get_classifier().out_features == 10
    from timm.data import resolve_data_config

    # The model in memory knows its input size, as the saved one does.
    assert resolve_data_config({}, model=result.model)["input_size"] == (3, 32, 32)
    assert result.label_names == DIGITS == summary["label_names"]
    assert result.model_dir == out / "model" and (out / "model" / "model.safetensors").is_file()
    assert recipe["train"]["epochs"] == 2  # the caller's dict is not modified


def test_finetune_keyword_override_with_a_typo_is_a_recipe_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as err:
        tl_toolkit.finetune(image_recipe(tmp_path / "run"), quiet=True, train__epoch=1)
    assert "train.epoch" in str(err.value) and "Did you mean 'epochs'?" in str(err.value)
    assert not (tmp_path / "run").exists()


def test_finetune_refuses_overrides_and_recipes_of_the_wrong_type_in_one_sentence(tmp_path: Path) -> None:
    recipe = image_recipe(tmp_path / "run")
    for args, expected in (
        ((None,), "recipe: got NoneType None; give a recipe file's path, a dict of its sections, or a Recipe"),
        ((recipe, "train.epochs=1"), "overrides: got the string 'train.epochs=1'; give a list of KEY=VALUE"),
        ((recipe, [1]), "override 1: expected a KEY=VALUE string"),
    ):
        with pytest.raises(RecipeError) as err:
            tl_toolkit.finetune(*args, quiet=True)
        assert str(err.value).startswith(expected)
    assert not (tmp_path / "run").exists()
    # A dict of dotted keys works as the keyword overrides do.
    assert tl_toolkit.load_recipe(recipe, {"train.epochs": 7, "train": {"lr": 0.5}}).train.model_dump(
        include={"epochs", "lr"}) == {"epochs": 7, "lr": 0.5}


def test_an_overwrite_that_does_not_finish_puts_the_previous_run_back(tmp_path: Path) -> None:
    """--overwrite sets the finished run aside and deletes it only once the new one finishes (``_output_dir``)."""
    out = tmp_path / "run"
    small = {"max_train_samples": 16, "max_eval_samples": 16}
    tl_toolkit.finetune(image_recipe(out, train={"epochs": 1}, data=small), quiet=True)
    (out / "export").mkdir()
    (out / "export" / "x.txt").write_text("derived from the old model")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def interrupt(end: tl_toolkit.EpochEnd) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as stopped:  # Ctrl-C after the new run's first epoch
        tl_toolkit.finetune(image_recipe(out, train={"epochs": 2}, data=small), quiet=True, overwrite=True,
                            callbacks=[interrupt])
    assert stopped.value.__notes__ == [f"the previous run in {out} is back as it was"]
    def fail(end: tl_toolkit.EpochEnd) -> None:
        raise ValueError("a failure only training meets")

    with pytest.raises(ValueError, match="only training"):
        tl_toolkit.finetune(image_recipe(out, train={"epochs": 1}, data=small), quiet=True, overwrite=True,
                            callbacks=[fail])
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    tl_toolkit.finetune(image_recipe(out, train={"epochs": 1}, data={**small, "max_train_samples": 32}), quiet=True,
                        overwrite=True)
    assert not (out / ".previous-run").exists() and not (out / "export").exists()  # the old model's export went too
    assert json.loads((out / "summary.json").read_text())["num_train_examples"] == 32


def test_a_replacement_killed_outright_is_named_and_either_flag_finishes_it(tmp_path: Path) -> None:
    """A process killed during --overwrite leaves .previous-run/: the refusal names it, and a finished
    replacement (resumed or overwritten again) removes it."""
    import shutil

    out = tmp_path / "run"
    small = {"max_train_samples": 16, "max_eval_samples": 16}
    tl_toolkit.finetune(image_recipe(out, train={"epochs": 1}, data=small), quiet=True)
    shutil.copytree(out, tmp_path / "finished")

    for kept_as in ("resume", "overwrite"):
        (out / ".previous-run").mkdir()
        for path in (tmp_path / "finished").iterdir():  # as set_aside left it before the kill
            shutil.copytree(path, out / ".previous-run" / path.name) if path.is_dir() else shutil.copy(
                path, out / ".previous-run" / path.name)
        for name in ("summary.json", "model", "report.md"):  # the replacement's partial files
            shutil.rmtree(out / name) if (out / name).is_dir() else (out / name).unlink()
        with pytest.raises(UserError, match=r"holds an unfinished run \(and, in .previous-run/, the finished run it "
                                            r"was replacing\); pass --resume"):
            tl_toolkit.finetune(image_recipe(out, train={"epochs": 1}, data=small), quiet=True)
        tl_toolkit.finetune(image_recipe(out, train={"epochs": 1}, data=small), quiet=True,
                            **{kept_as: True})
        assert (out / "summary.json").is_file() and not (out / ".previous-run").exists()


def test_a_quiet_resume_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    class Stop(Exception):
        pass

    def stop(end: tl_toolkit.EpochEnd) -> None:
        raise Stop

    recipe = image_recipe(tmp_path / "run", data={"max_train_samples": 16, "max_eval_samples": 16})
    with pytest.raises(Stop):
        tl_toolkit.finetune(recipe, quiet=True, callbacks=[stop])
    capsys.readouterr()
    saved = (tmp_path / "run" / "recipe.yaml").read_bytes()
    changed = image_recipe(tmp_path / "run", data={"max_train_samples": 16, "max_eval_samples": 16, "classes": [1, 2]})
    with pytest.raises(UserError, match=r"--resume: the run in .* was started with other settings \(data.classes "
                                        r"null -> \[\"1\", \"2\"\]\); resume with the settings it was started with"):
        tl_toolkit.finetune(changed, quiet=True, resume=True)
    assert (tmp_path / "run" / "recipe.yaml").read_bytes() == saved  # nothing changed on disk
    import transformers

    transformers.logging.set_verbosity_info()  # the caller's own setting
    try:
        result = tl_toolkit.finetune(recipe, quiet=True, resume=True)
        assert transformers.logging.get_verbosity() == transformers.logging.INFO  # given back after the run
    finally:
        transformers.logging.set_verbosity_warning()
    assert capsys.readouterr() == ("", "")  # not even the checkpoint it resumed from
    assert len(eval_rows(tmp_path / "run")) == 2 and result.model is not None


def test_validate_recipe_checks_plugins_and_files_as_tl_validate_does(tmp_path: Path) -> None:
    recipe = image_recipe(tmp_path / "run", strategy={"plugin": "lorra"}, data={"format": "csv", "train": "nope.csv"})
    with pytest.raises(RecipeError) as err:
        tl_toolkit.validate_recipe(recipe)
    assert any("Did you mean 'lora'?" in p for p in err.value.problems)
    assert any("nope.csv" in p for p in err.value.problems)  # every problem at once
    assert tl_toolkit.validate_recipe(image_recipe(tmp_path / "run")).name == "api"
    assert {"finetune", "predict", "validate_recipe"} <= set(dir(tl_toolkit))  # lazy names complete too


def test_finetune_recipe_built_in_code_and_its_yaml_reproduces_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    recipe = Recipe(
        name="in-code",
        output_dir=str(out),
        backbone=BackboneConfig(plugin="resnet", model="resnet18", pretrained=False),
        data=DataConfig(format="digits", train="train", eval="test", image_size=32,
                        max_train_samples=64, max_eval_samples=32),
        strategy=StrategyConfig(plugin="head-only"),
        train=TrainConfig(epochs=1, batch_size=16, lr=1.0e-2),
    )
    result = tl_toolkit.finetune(recipe, quiet=True)
    assert result.output_dir == out
    assert result.summary["strategy"] == "head-only"
    assert result.summary["trainable_params"] == 512 * 10 + 10  # only the fc head trains
    assert tl_toolkit.load_recipe(out / "recipe.yaml") == recipe

    # The written recipe.yaml, run again from its path, gives the same run.
    again = tl_toolkit.finetune(out / "recipe.yaml", quiet=True, overwrite=True)
    assert again.metrics == pytest.approx(result.metrics, rel=1e-5)


def test_a_finished_run_is_replaced_only_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Refused without ``overwrite`` (every file as it was); replaced whole with it, stale files included.

    The CLI's refusal (exit 2, the whole sentence, byte-identical files) is the bad-input matrix's case
    ``run:finished run in output_dir``.
    """
    import torch

    out = tmp_path / "run"
    small = {"max_train_samples": 16, "max_eval_samples": 16}
    first = tl_toolkit.finetune(image_recipe(out, train={"epochs": 1}, data=small), quiet=True)
    assert first.summary["num_train_examples"] == 16
    (out / "eval.json").write_text("{}")  # as `tl eval` leaves it: it describes the old model
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    bigger = {**small, "max_train_samples": 32}
    with pytest.raises(UserError) as err:
        tl_toolkit.finetune(image_recipe(out, train={"epochs": 1}, data=bigger), quiet=True)
    assert str(err.value) == (f"output_dir: {str(out)!r} already holds a finished run; pass --overwrite to replace "
                              "it (overwrite=True from Python) or set output_dir=<another directory>")
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    second = tl_toolkit.finetune(image_recipe(out, train={"epochs": 1}, data=bigger), quiet=True, overwrite=True)
    assert second.summary["num_train_examples"] == 32
    assert json.loads((out / "summary.json").read_text()) == second.summary
    assert len(eval_rows(out)) == 1  # the old run's metrics were replaced, not appended to
    assert yaml.safe_load((out / "recipe.yaml").read_text())["data"]["max_train_samples"] == 32
    assert not (out / "eval.json").exists()  # the old model's evaluation went with it

    # resume=True on a finished run trains nothing, says so, and still returns the run's model.
    again = tl_toolkit.finetune(image_recipe(out, train={"epochs": 1}, data=bigger), resume=True)
    assert again.metrics == second.metrics and again.model is not None
    weights = [w.float() for w in (second.model.state_dict()["fc.weight"], again.model.state_dict()["fc.weight"])]
    assert torch.equal(*weights)  # the saved model, not a fresh one
    assert f"the run in {out} is already finished; nothing was trained" in capsys.readouterr().out


# -- a finished source run: predict, load_model_dir, transfer --------------------------------


@pytest.fixture(scope="module")
def source_run(tmp_path_factory: pytest.TempPathFactory) -> tl_toolkit.FinetuneResult:
    """A finished run on digits 0-4."""
    out = tmp_path_factory.mktemp("source") / "run"
    recipe = image_recipe(out, name="source", data={"classes": [0, 1, 2, 3, 4]},
                          train={"epochs": 1, "lr": 1.0e-2})
    return tl_toolkit.finetune(recipe, quiet=True)


def test_load_model_dir(source_run: tl_toolkit.FinetuneResult) -> None:
    for where in (source_run.output_dir, source_run.output_dir / "model"):
        loaded = tl_toolkit.load_model_dir(where)
        assert loaded.label_names == ["0", "1", "2", "3", "4"] == source_run.label_names
        assert loaded.backbone.modality == "image"
        assert loaded.meta["backbone"]["plugin"] == "resnet"
        assert not loaded.model.training
        assert loaded.model.get_classifier().out_features == 5
        trained = source_run.model.state_dict()
        assert_same_weights(loaded.model.state_dict(), trained, list(trained))


def test_load_model_dir_of_a_non_run(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a finished run"):
        tl_toolkit.load_model_dir(tmp_path)


def test_predict_images(source_run: tl_toolkit.FinetuneResult, tmp_path: Path) -> None:
    import torch

    paths = write_digit_pngs(tmp_path / "images", [0, 1, 2, 3, 4, 3, 2])
    predictions = tl_toolkit.predict(source_run.output_dir, [str(p) for p in paths])
    assert len(predictions) == len(paths)
    assert [p["input"] for p in predictions] == [str(p) for p in paths]
    for p in predictions:
        assert p["label"] in source_run.label_names
        assert 0.2 <= p["score"] <= 1.0  # the top of 5 softmax probabilities
        assert "top_k" not in p

    # The same labels as the loaded model on the run's eval transform.
    loaded = tl_toolkit.load_model_dir(source_run.output_dir)
    from PIL import Image

    batch = torch.stack([loaded.backbone.eval_transform(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        probs = loaded.model(batch).softmax(-1)
    assert [p["label"] for p in predictions] == [loaded.label_names[i] for i in probs.argmax(-1).tolist()]
    assert [p["score"] for p in predictions] == pytest.approx(probs.max(-1).values.tolist(), abs=1e-5)

    # A folder of images, and the top k labels.
    top = tl_toolkit.predict(source_run.output_dir, [tmp_path / "images"], top_k=3)
    assert [p["label"] for p in top] == [p["label"] for p in predictions]
    for p in top:
        assert len(p["top_k"]) == 3 and p["top_k"][0]["label"] == p["label"]
        scores = [k["score"] for k in p["top_k"]]
        assert scores == sorted(scores, reverse=True)


def test_predict_missing_input(source_run: tl_toolkit.FinetuneResult, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such image"):
        tl_toolkit.predict(source_run.output_dir, [tmp_path / "absent.png"])


def test_transfer_init_from_a_source_run(source_run: tl_toolkit.FinetuneResult, tmp_path: Path) -> None:
    out = tmp_path / "target"
    target = tl_toolkit.finetune(
        image_recipe(out, name="target", backbone={"init_from": str(source_run.output_dir)},
                     data={"classes": [5, 6, 7, 8, 9]}, strategy={"plugin": "head-only"},
                     train={"epochs": 1, "lr": 1.0e-2}),
        quiet=True,
    )
    assert target.label_names == ["5", "6", "7", "8", "9"]
    assert target.model.get_classifier().out_features == 5
    assert target.summary["source"] == str(source_run.output_dir / "model")
    assert target.summary["trainable_params"] == 512 * 5 + 5

    # Head-only keeps the body as it was built: the source run's fine-tuned weights and BN statistics.
    source = tl_toolkit.load_model_dir(source_run.output_dir).model.state_dict()
    after = target.model.state_dict()
    body = [k for k in source if not k.startswith("fc.")]
    assert any(k.endswith("running_mean") for k in body)
    assert_same_weights(after, source, body)
    assert after["fc.weight"].shape == (5, 512)

    # The saved target loads with its own labels.
    assert tl_toolkit.load_model_dir(out).label_names == ["5", "6", "7", "8", "9"]


def test_init_from_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "not-a-run" / "notes.txt").write_text("hello\n")
    for value in (tmp_path / "not-a-run", tmp_path / "absent"):
        with pytest.raises(UserError) as err:
            tl_toolkit.finetune(image_recipe(tmp_path / "run", backbone={"init_from": str(value)}), quiet=True)
        assert "backbone.init_from" in str(err.value) and str(value) in str(err.value)
    assert not (tmp_path / "run" / "summary.json").exists()


def test_init_from_a_run_of_another_backbone(
    source_run: tl_toolkit.FinetuneResult, tmp_path: Path, tiny_bert_dir: Path
) -> None:
    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + "".join(f"good movie {i},1\nbad movie {i},0\n" for i in range(8)))
    recipe = {
        "name": "text-from-image",
        "output_dir": str(tmp_path / "run"),
        "backbone": {"plugin": "bert", "model": str(tiny_bert_dir), "init_from": str(source_run.output_dir)},
        "data": {"format": "csv", "train": str(train), "eval": str(train)},
        "train": {"epochs": 1, "batch_size": 8},
    }
    with pytest.raises(UserError) as err:
        tl_toolkit.finetune(recipe, quiet=True)
    message = str(err.value)
    assert "backbone.init_from" in message and "'resnet'" in message and "'bert'" in message
    assert not (tmp_path / "run").exists()  # caught by validation, before anything is written
