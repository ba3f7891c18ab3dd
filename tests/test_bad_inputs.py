"""Bad input, everywhere: the matrix of user mistakes across recipe, data, model, strategy and CLI.

Every case runs the CLI's ``main([...])`` in this process (the real ``tl`` in a
subprocess for a few, to prove the process itself prints no traceback) and
must: exit 2, print one ``tl VERB: error:`` line naming the recipe key, file or
column with what to do, print no traceback, and leave every file already in
the output directory byte for byte as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import run_tl
from PIL import Image

from tl_toolkit._cli import main


@dataclass
class Env:
    """A tmp folder with good data, a good text recipe and a good image recipe, and an output directory."""

    root: Path
    bert: Path

    @property
    def out(self) -> Path:
        return self.root / "out"

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return path

    def text_recipe(self, **sections: Any) -> dict[str, Any]:
        recipe: dict[str, Any] = {
            "name": "bad",
            "output_dir": str(self.out),
            "backbone": {"plugin": "bert", "model": str(self.bert)},
            "data": {"format": "csv", "train": str(self.root / "train.tsv"), "eval": str(self.root / "dev.tsv")},
            "strategy": {"plugin": "full"},
            "train": {"epochs": 1, "batch_size": 4},
        }
        for key, value in sections.items():
            recipe[key] = {**recipe.get(key, {}), **value} if isinstance(value, dict) else value
        return recipe

    def image_recipe(self, **sections: Any) -> dict[str, Any]:
        recipe = self.text_recipe(**sections)
        recipe["backbone"] = {"plugin": "resnet", "model": "resnet18", "pretrained": False,
                              **sections.get("backbone", {})}
        recipe["data"] = {"format": "imagefolder", "train": str(self.root / "img"), "eval": str(self.root / "img"),
                          "image_size": 32, **sections.get("data", {})}
        return recipe

    def write(self, recipe: dict[str, Any] | str, name: str = "recipe.yaml") -> str:
        text = recipe if isinstance(recipe, str) else yaml.safe_dump(recipe)
        return str(self.file(name, text))


GOOD_TSV = "text\tlabel\n" + "".join(f"{w} film\t{'pos' if i % 2 else 'neg'}\n" for i, w in enumerate(
    ["good", "bad", "fine", "awful", "great", "poor", "nice", "dull"]))


@pytest.fixture
def env(tmp_path: Path, tiny_bert_dir: Path) -> Env:
    env = Env(tmp_path, tiny_bert_dir)
    env.file("train.tsv", GOOD_TSV)
    env.file("dev.tsv", GOOD_TSV)
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        for i in range(3):
            (tmp_path / "img" / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(tmp_path / "img" / cls / f"{i}.png")
    env.out.mkdir()
    (env.out / "notes.txt").write_text("the user's own notes, never to be touched\n")
    (env.out / "recipe.yaml").write_text("# an earlier attempt's recipe\n")
    return env


# Each case: (id, function building the files and returning the argv of `tl`, fragments the message names).
Case = tuple[str, Callable[[Env], list[str]], tuple[str, ...]]


def _validate(env: Env, recipe: dict[str, Any] | str, *overrides: str) -> list[str]:
    return ["validate", env.write(recipe), *overrides]


def _run(env: Env, recipe: dict[str, Any] | str, *overrides: str) -> list[str]:
    return ["run", env.write(recipe), "-q", *overrides]


def _weights_with_wrong_keys(env: Env) -> list[str]:
    import torch
    from safetensors.torch import save_file

    path = env.root / "other.safetensors"
    save_file({"encoder.block.0.weight": torch.zeros(4, 4)}, str(path))
    return _run(env, env.image_recipe(backbone={"weights": str(path)}))


def _finished_run(env: Env) -> list[str]:
    (env.out / "summary.json").write_text(json.dumps({"eval": {"accuracy": 0.5}}))
    return _run(env, env.text_recipe())


def _unfinished_run(env: Env) -> list[str]:
    (env.out / "metrics.jsonl").write_text('{"kind": "train", "step": 1}\n')
    return _run(env, env.text_recipe())


def _source_run_of_another_backbone(env: Env) -> list[str]:
    source = env.root / "source-run" / "model"
    source.mkdir(parents=True)
    (source / "tl_toolkit.json").write_text(json.dumps({"backbone": {"plugin": "resnet"}}))
    return _validate(env, env.text_recipe(backbone={"init_from": str(source.parent)}))


def _corrupt_image(env: Env) -> list[str]:
    env.file("img/dog/broken.jpg", b"\xff\xd8 this is no JPEG")
    return _run(env, env.image_recipe())


RECIPE_CASES: list[Case] = [
    ("unknown top-level key", lambda e: _validate(e, {**e.text_recipe(), "trian": {}}), ("'trian'", "'train'")),
    ("unknown nested key", lambda e: _validate(e, e.text_recipe(train={"epoch": 2})), ("train.epoch", "'epochs'")),
    ("wrong type", lambda e: _validate(e, e.text_recipe(), "train.batch_size=many"), ("train.batch_size", "many")),
    ("negative lr", lambda e: _validate(e, e.text_recipe(train={"lr": -0.1})), ("train.lr",)),
    ("zero epochs", lambda e: _validate(e, e.text_recipe(), "train.epochs=0"), ("train.epochs",)),
    ("bad enum", lambda e: _validate(e, e.text_recipe(train={"scheduler": "warm"})), ("train.scheduler", "cosine")),
    ("bad data format", lambda e: _validate(e, e.text_recipe(), "data.format=xml"), ("data.format", "parquet")),
    ("missing section", lambda e: _validate(e, {k: v for k, v in e.text_recipe().items() if k != "data"}),
     ("data",)),
    ("missing required key", lambda e: _validate(e, e.text_recipe(backbone={"plugin": "bert"}) | {
        "backbone": {"plugin": "bert"}}), ("backbone.model",)),
    ("section given as a scalar", lambda e: _validate(e, e.text_recipe(train=3)), ("train",)),
    ("empty name", lambda e: _validate(e, e.text_recipe(name="")), ("name",)),
    ("warmup ratio out of range", lambda e: _validate(e, e.text_recipe(), "train.warmup_ratio=1.5"),
     ("train.warmup_ratio",)),
    ("recipe file missing", lambda e: ["validate", str(e.root / "nope.yaml")], ("nope.yaml",)),
    ("recipe is not YAML", lambda e: _validate(e, "name: [unclosed\n"), ("recipe.yaml", "YAML")),
    ("recipe is not a mapping", lambda e: _validate(e, "- just\n- a list\n"), ("recipe.yaml",)),
    ("unknown baseline", lambda e: _validate(e, e.text_recipe(baselines=["random"])), ("baselines",)),
]

DATA_CASES: list[Case] = [
    ("missing train file", lambda e: _validate(e, e.text_recipe(data={"train": "absent.tsv"})),
     ("data.train", "absent.tsv")),
    ("missing eval file", lambda e: _validate(e, e.text_recipe(data={"eval": "absent.tsv"})),
     ("data.eval", "absent.tsv")),
    ("empty file", lambda e: _validate(e, e.text_recipe(data={"train": str(e.file("empty.tsv", b""))})),
     ("data.train", "empty.tsv", "is empty")),
    ("header but no rows", lambda e: _validate(e, e.text_recipe(data={"train": str(e.file("h.tsv", "text\tlabel\n"))})),
     ("data.train", "h.tsv", "no rows")),
    ("non-UTF-8 text", lambda e: _validate(e, e.text_recipe(data={"train": str(e.file(
        "latin1.tsv", "text\tlabel\ncaf\xe9 film\tpos\n".encode("latin-1")))})), ("data.train", "latin1.tsv", "UTF-8")),
    ("missing text column", lambda e: _run(e, e.text_recipe(data={"text_column": "sentence"})),
     ("data.text_column", "'sentence'", "text, label")),
    ("missing label column", lambda e: _run(e, e.text_recipe(data={"label_column": "sentiment"})),
     ("data.label_column", "'sentiment'")),
    ("missing image column", lambda e: _run(e, e.image_recipe(data={
        "format": "csv", "train": str(e.root / "train.tsv"), "eval": str(e.root / "dev.tsv")})),
     ("data.image_column", "'image'")),
    ("missing label values (NaN)", lambda e: _run(e, e.text_recipe(data={"train": str(e.file(
        "nan.tsv", GOOD_TSV + "odd film\t\n"))})), ("label column 'label'", "nan.tsv", "fill or drop")),
    ("empty text", lambda e: _run(e, e.text_recipe(data={"train": str(e.file(
        "blank.tsv", GOOD_TSV + "  \tpos\n"))})), ("data.text_column", "blank.tsv", "row 8")),
    ("eval labels outside the training labels", lambda e: _run(e, e.text_recipe(data={"eval": str(e.file(
        "dev3.tsv", GOOD_TSV + "so-so film\tmixed\n"))})), ("data.eval", "'mixed'")),
    ("classes unseen in training", lambda e: _run(e, e.text_recipe(data={"classes": ["pos", "meh"]})),
     ("data.classes", "'meh'")),
    ("corrupt image", _corrupt_image, ("data.image_column", "broken.jpg", "remove or replace")),
    ("image folder without images", lambda e: _run(e, e.image_recipe(data={"train": str(
        (e.root / "nothing").mkdir() or e.root / "nothing")})), ("nothing", "no images found")),
    ("missing image folder", lambda e: _validate(e, e.image_recipe(data={"eval": "no-such-folder"})),
     ("data.eval", "no-such-folder")),
    ("wrong CSV delimiter", lambda e: _run(e, e.text_recipe(data={"delimiter": ";"})),
     ("data.text_column", "'text'")),
    ("unknown digits split", lambda e: _run(e, e.image_recipe(data={"format": "digits", "train": "training"})),
     ("data.train", "'training'")),
    ("image size below 8", lambda e: _validate(e, e.image_recipe(data={"image_size": 4})), ("data.image_size",)),
]

MODEL_CASES: list[Case] = [
    ("unknown backbone plugin", lambda e: _validate(e, e.text_recipe(backbone={"plugin": "berty"})),
     ("backbone.plugin", "'berty'", "'bert'")),
    ("missing local model directory", lambda e: _run(e, e.text_recipe(backbone={"model": str(e.root / "no-model")})),
     ("backbone.model", "no-model")),
    ("missing weights file", lambda e: _validate(e, e.image_recipe(backbone={"weights": "absent.safetensors"})),
     ("backbone.weights", "absent.safetensors")),
    ("weights file with wrong keys", _weights_with_wrong_keys, ("backbone.weights", "other.safetensors")),
    ("weights file that is not weights", lambda e: _run(e, e.image_recipe(backbone={"weights": str(e.file(
        "w.pth", "not a pickle"))})), ("backbone.weights", "w.pth")),
    ("init_from a folder that is not a run", lambda e: _validate(e, e.text_recipe(backbone={"init_from": str(
        (e.root / "empty-run").mkdir() or e.root / "empty-run")})), ("backbone.init_from", "empty-run")),
    ("init_from a run of another backbone", _source_run_of_another_backbone, ("backbone.init_from", "'resnet'")),
    ("backbone option of the wrong type", lambda e: _validate(e, e.image_recipe(backbone={"options": {
        "hflip": "often"}})), ("backbone.options.hflip",)),
    ("unknown backbone option", lambda e: _validate(e, e.text_recipe(backbone={"options": {"trust_code": True}})),
     ("backbone.options", "trust_code")),
]

STRATEGY_CASES: list[Case] = [
    ("unknown strategy plugin", lambda e: _validate(e, e.text_recipe(strategy={"plugin": "lora2"})),
     ("strategy.plugin", "'lora2'", "'lora'")),
    ("LoRA target modules that do not exist", lambda e: _run(e, e.text_recipe(strategy={
        "plugin": "lora", "options": {"target_modules": ["qkv_proj"]}})), ("target_modules", "qkv_proj")),
    ("LoRA rank of the wrong type", lambda e: _validate(e, e.text_recipe(strategy={
        "plugin": "lora", "options": {"r": "eight"}})), ("strategy.options.r",)),
    ("LoRA rank zero", lambda e: _validate(e, e.text_recipe(strategy={"plugin": "lora", "options": {"r": 0}})),
     ("strategy.options.r",)),
    ("unknown LoRA option", lambda e: _validate(e, e.text_recipe(strategy={
        "plugin": "lora", "options": {"rank": 4}})), ("strategy.options", "rank")),
]

CLI_CASES: list[Case] = [
    ("unknown verb", lambda e: ["trian", e.write(e.text_recipe())], ("invalid choice", "'trian'")),
    ("unknown option", lambda e: ["run", e.write(e.text_recipe()), "--resmue"], ("--resmue",)),
    ("override without '='", lambda e: _validate(e, e.text_recipe(), "train.epochs"), ("train.epochs", "KEY=VALUE")),
    ("override below a scalar", lambda e: _validate(e, e.text_recipe(), "train.epochs.max=2"), ("train.epochs",)),
    ("override of an unknown key", lambda e: _run(e, e.text_recipe(), "train.bacth_size=8"),
     ("bacth_size", "batch_size")),
    ("output directory holds a finished run", _finished_run, ("output_dir", "finished run", "--overwrite")),
    ("output directory holds an unfinished run", _unfinished_run, ("output_dir", "--resume")),
    ("best metric the evaluation does not report", lambda e: _run(e, e.text_recipe(train={"best_metric": "auc"})),
     ("train.best_metric", "'auc'", "accuracy")),
    ("predict with a folder that is not a run", lambda e: ["predict", str(e.out), str(e.root / "train.tsv")],
     ("not a finished run",)),
    ("eval of a folder that is not a run", lambda e: ["eval", str(e.out)], ("not a finished run",)),
]

CASES = [*RECIPE_CASES, *DATA_CASES, *MODEL_CASES, *STRATEGY_CASES, *CLI_CASES]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_matrix_has_at_least_40_cases() -> None:
    assert len(CASES) >= 40 and len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(("build", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(env: Env, build: Callable[[Env], list[str]], fragments: tuple[str, ...],
                   capsys: pytest.CaptureFixture[str]) -> None:
    argv = build(env)
    before = _snapshot(env.out)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert errors, err  # one line a problem; a wrong delimiter, say, loses both columns
    assert all(fragment in errors[0] for fragment in fragments), errors[0]
    after = _snapshot(env.out)
    assert {k: v for k, v in after.items() if k in before} == before  # what was there is untouched


@pytest.mark.parametrize("case", ["unknown verb", "corrupt image"])
def test_bad_input_through_the_real_tl(env: Env, case: str) -> None:
    """The installed entry point itself: exit 2, the message, and no traceback from the process."""
    build, fragments = next(c[1:] for c in CASES if c[0] == case)
    before = _snapshot(env.out)
    proc = run_tl(*build(env), cwd=env.root)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert all(fragment in proc.stderr for fragment in fragments)
    assert _snapshot(env.out) == before


def test_internal_error_exits_1_with_traceback_and_log_file(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tl_toolkit._validate

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug, not the user's fault")

    monkeypatch.setenv("TL_LOG_DIR", str(env.root / "logs"))
    monkeypatch.setattr(tl_toolkit._validate, "validate", broken)
    code = main(["validate", env.write(env.text_recipe())])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" in err and "RuntimeError: a bug, not the user's fault" in err
    [log] = (env.root / "logs").iterdir()
    assert str(log) in err.splitlines()[-1]
    text = log.read_text()
    assert "tl validate" in text and "Traceback" in text and "a bug, not the user's fault" in text
