"""The table of user mistakes behind ``test_bad_inputs.py``: every verb, every kind of input.

Each case builds its files in a folder of its own and returns the ``tl`` command
line; ``says`` are the fragments its error line must hold: the recipe key, file
or option it names and the cause. ``user="nobody"`` runs the command without
root's rights, so that a file or folder without permissions means what it means
for a user. The shared good data, tiny model and finished runs live in a
``World`` built once (see the test module).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

GOOD_TSV = "text\tlabel\n" + "".join(f"{w} film\t{'pos' if i % 2 else 'neg'}\n" for i, w in enumerate(
    ["good", "bad", "fine", "awful", "great", "poor", "nice", "dull"]))


@dataclass
class World:
    """What every case may read: good data, a tiny BERT, finished runs (never written to)."""

    root: Path
    bert: Path
    runs: dict[str, Path]  # "text" (full), "lora" (text LoRA), "image" (resnet full)


@dataclass
class Env:
    """One case's own folder (``dir``) with ``out/`` holding the user's earlier files."""

    world: World
    dir: Path

    @property
    def out(self) -> Path:
        return self.dir / "out"

    @property
    def root(self) -> Path:
        return self.world.root

    def file(self, name: str, content: str | bytes, mode: int | None = None) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        if mode is not None:
            path.chmod(mode)
        return path

    def folder(self, name: str, mode: int | None = None) -> Path:
        path = self.dir / name
        path.mkdir(parents=True, exist_ok=True)
        if mode is not None:
            path.chmod(mode)
        return path

    def text_recipe(self, **sections: Any) -> dict[str, Any]:
        recipe: dict[str, Any] = {
            "name": "bad",
            "output_dir": str(self.out),
            "backbone": {"plugin": "bert", "model": str(self.world.bert)},
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

    def data(self, name: str, content: str | bytes, mode: int | None = None) -> str:
        return str(self.file(name, content, mode))

    def run_copy(self, kind: str) -> Path:
        """A copy of a finished run this case may damage."""
        target = self.dir / f"run-{kind}"
        shutil.copytree(self.world.runs[kind], target)
        return target


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Env], list[str]]
    says: tuple[str, ...]
    user: str = "root"  # "nobody": run without root's rights (permission cases)
    defect: int | None = None  # the item of issue 15 the case reproduces

    @property
    def verb(self) -> str:
        return self.id.split(":", 1)[0]


def _v(env: Env, recipe: dict[str, Any] | str, *overrides: str) -> list[str]:
    return ["validate", env.write(recipe), *overrides]


def _r(env: Env, recipe: dict[str, Any] | str, *overrides: str) -> list[str]:
    return ["run", env.write(recipe), "-q", *overrides]


def _finished(env: Env) -> None:
    """Make ``out/`` hold a finished run (a copy of the world's), as a user's earlier run."""
    shutil.rmtree(env.out)
    shutil.copytree(env.world.runs["text"], env.out)


def _overwrite(env: Env, **sections: Any) -> list[str]:
    _finished(env)
    return [*_r(env, env.text_recipe(**sections)), "--overwrite"]


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _run_with_truncated_weights(env: Env, kind: str = "text") -> Path:
    run = env.run_copy(kind)
    _truncated(run / "model" / "model.safetensors")
    return run


def _model_dir_with_truncated_weights(env: Env) -> str:
    model = env.dir / "model"
    shutil.copytree(env.world.bert, model)
    _truncated(model / "model.safetensors")
    return str(model)


def _pickled_module(env: Env) -> str:
    import torch

    path = env.dir / "module.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    return str(path)


def _tensor_list(env: Env) -> str:
    import torch

    path = env.dir / "list.pth"
    torch.save([torch.zeros(2)], path)
    return str(path)


def _wrong_keys(env: Env) -> str:
    import torch
    from safetensors.torch import save_file

    path = env.dir / "other.safetensors"
    save_file({"encoder.block.0.weight": torch.zeros(4, 4)}, str(path))
    return str(path)


def _png(env: Env, name: str) -> str:
    import numpy as np
    from PIL import Image

    path = env.dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((12, 12, 3), dtype=np.uint8)).save(path)
    return str(path)


def _meta(env: Env, change: Callable[[dict[str, Any]], None]) -> str:
    run = env.run_copy("text")
    path = run / "model" / "tl_toolkit.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))
    return str(run)


def _unreadable(env: Env, name: str, content: str) -> str:
    return env.data(name, content, mode=0o000)


def _readonly_folder(env: Env) -> Path:
    return env.folder("locked", mode=0o555)


T = "train.tsv"
LATIN1 = "text\tlabel\ncaf\xe9 film\tpos\n".encode("latin-1")
RAGGED = GOOD_TSV + "odd film\tpos\textra\n"
COLUMNS_JSON = json.dumps({"text": {"0": "good film", "1": "bad film"}, "label": {"0": "pos", "1": "neg"}})
ONE_CLASS = "text\tlabel\n" + "".join(f"{w} film\tpos\n" for w in ["good", "fine", "great", "nice"])


RECIPE_CASES = [
    Case("validate:unknown top-level key", lambda e: _v(e, {**e.text_recipe(), "trian": {}}), ("'trian'", "'train'")),
    Case("validate:unknown nested key", lambda e: _v(e, e.text_recipe(train={"epoch": 2})), ("train.epoch", "'epochs'")),
    Case("validate:wrong type", lambda e: _v(e, e.text_recipe(), "train.batch_size=many"),
         ("train.batch_size", "many")),
    Case("validate:negative lr", lambda e: _v(e, e.text_recipe(train={"lr": -0.1})), ("train.lr", "greater than 0")),
    Case("validate:zero epochs", lambda e: _v(e, e.text_recipe(), "train.epochs=0"), ("train.epochs",)),
    Case("validate:zero batch size", lambda e: _v(e, e.text_recipe(), "train.batch_size=0"), ("train.batch_size",)),
    Case("validate:zero accumulation", lambda e: _v(e, e.text_recipe(), "train.grad_accum_steps=0"),
         ("train.grad_accum_steps",)),
    Case("validate:negative sample cap", lambda e: _v(e, e.text_recipe(), "data.max_train_samples=-1"),
         ("data.max_train_samples",)),
    Case("validate:seed not a number", lambda e: _v(e, e.text_recipe(), "seed=abc"), ("seed", "abc")),
    Case("validate:bad precision", lambda e: _v(e, e.text_recipe(), "train.mixed_precision=fp8"),
         ("train.mixed_precision", "bf16")),
    Case("validate:bad enum", lambda e: _v(e, e.text_recipe(train={"scheduler": "warm"})),
         ("train.scheduler", "cosine")),
    Case("validate:bad data format", lambda e: _v(e, e.text_recipe(), "data.format=xml"), ("data.format", "parquet")),
    Case("validate:bad task", lambda e: _v(e, e.text_recipe(), "data.task=ranking"), ("data.task", "regression")),
    Case("validate:bad union value", lambda e: _v(e, e.text_recipe(), "train.gradient_checkpointing=maybe"),
         ("train.gradient_checkpointing",)),
    Case("validate:missing section", lambda e: _v(e, {k: v for k, v in e.text_recipe().items() if k != "data"}),
         ("data",)),
    Case("validate:missing required key", lambda e: _v(e, {**e.text_recipe(), "backbone": {"plugin": "bert"}}),
         ("backbone.model",)),
    Case("validate:section given as a scalar", lambda e: _v(e, e.text_recipe(train=3)), ("train",)),
    Case("validate:empty name", lambda e: _v(e, e.text_recipe(name="")), ("name",)),
    Case("validate:warmup ratio out of range", lambda e: _v(e, e.text_recipe(), "train.warmup_ratio=1.5"),
         ("train.warmup_ratio",)),
    Case("validate:unknown baseline", lambda e: _v(e, e.text_recipe(baselines=["random"])), ("baselines",)),
    Case("validate:unknown best metric", lambda e: _v(e, e.text_recipe(train={"best_metric": "auc"})),
         ("train.best_metric", "'auc'")),
    Case("validate:unknown tracker", lambda e: _v(e, e.text_recipe(train={"trackers": ["nope"]})),
         ("train.trackers", "nope")),
    Case("validate:recipe file missing", lambda e: ["validate", str(e.dir / "nope.yaml")], ("nope.yaml", "not found")),
    Case("validate:recipe is a folder", lambda e: ["validate", str(e.folder("recipe-dir"))],
         ("recipe-dir", "directory")),
    Case("validate:recipe unreadable", lambda e: ["validate", _unreadable(e, "secret.yaml", "name: x\n")],
         ("secret.yaml", "permission denied"), user="nobody", defect=2),
    Case("validate:recipe not UTF-8", lambda e: ["validate", e.data("r.yaml", b"name: caf\xe9\n")],
         ("r.yaml", "UTF-8")),
    Case("validate:recipe empty", lambda e: ["validate", e.data("empty.yaml", "")], ("empty.yaml",)),
    Case("validate:recipe is not YAML", lambda e: _v(e, "name: [unclosed\n"), ("recipe.yaml", "YAML")),
    Case("validate:recipe is not a mapping", lambda e: _v(e, "- just\n- a list\n"), ("recipe.yaml", "mapping")),
    Case("validate:override without '='", lambda e: _v(e, e.text_recipe(), "train.epochs"),
         ("train.epochs", "KEY=VALUE")),
    Case("validate:override below a scalar", lambda e: _v(e, e.text_recipe(), "train.epochs.max=2"),
         ("train.epochs",)),
    Case("validate:override of an unknown key", lambda e: _v(e, e.text_recipe(), "train.bacth_size=8"),
         ("bacth_size", "batch_size")),
    Case("validate:override of an unknown section", lambda e: _v(e, e.text_recipe(), "trainer.lr=1"),
         ("trainer", "'train'")),
]

OUTPUT_CASES = [
    Case("validate:output_dir is a file", lambda e: _v(e, e.text_recipe(output_dir=e.data("taken", "x"))),
         ("output_dir", "taken", "is a file"), defect=2),
    Case("validate:output_dir under a file", lambda e: _v(e, e.text_recipe(output_dir=e.data("f", "x") + "/out")),
         ("output_dir", "f/out", "is a file"), defect=2),
    Case("validate:output_dir in a read-only folder", lambda e: _v(e, e.text_recipe(
        output_dir=str(_readonly_folder(e) / "out"))), ("output_dir", "locked", "not writable"),
         user="nobody", defect=2),
    Case("validate:output_dir that cannot be created", lambda e: _v(e, e.text_recipe(output_dir="/proc/tl/out")),
         ("output_dir", "/proc/tl/out", "cannot be created"), defect=2),
    Case("run:output_dir is a file", lambda e: _r(e, e.text_recipe(output_dir=e.data("taken", "x"))),
         ("output_dir", "taken", "is a file"), defect=2),
    Case("run:output_dir under a file", lambda e: _r(e, e.text_recipe(output_dir=e.data("f", "x") + "/out")),
         ("output_dir", "f/out", "is a file"), defect=2),
    Case("run:output_dir in a read-only folder", lambda e: _r(e, e.text_recipe(
        output_dir=str(_readonly_folder(e) / "out"))), ("output_dir", "locked", "not writable"),
         user="nobody", defect=2),
    Case("run:output_dir that cannot be created", lambda e: _r(e, e.text_recipe(output_dir="/proc/tl/out")),
         ("output_dir", "/proc/tl/out", "cannot be created"), defect=2),
    Case("run:recipe unreadable", lambda e: ["run", _unreadable(e, "secret.yaml", "name: x\n")],
         ("secret.yaml", "permission denied"), user="nobody", defect=2),
    Case("run:recipe is a folder", lambda e: ["run", str(e.folder("recipe-dir"))], ("recipe-dir", "directory")),
    Case("run:finished run in output_dir", lambda e: (_finished(e), _r(e, e.text_recipe()))[1],
         ("output_dir", "finished run", "--overwrite")),
    Case("run:unfinished run in output_dir", lambda e: (e.file("out/metrics.jsonl", '{"kind": "train"}\n'),
                                                          _r(e, e.text_recipe()))[1], ("output_dir", "--resume")),
    Case("run:no recipe", lambda e: ["run", "-q"], ("run", "recipe file")),
    Case("run:from-manifest of a folder that is not a run", lambda e: ["run", "--from-manifest", str(e.out)],
         ("out", "manifest.json")),
    Case("run:unknown option", lambda e: ["run", e.write(e.text_recipe()), "--resmue"], ("--resmue",)),
    Case("run:unknown verb", lambda e: ["trian", e.write(e.text_recipe())], ("invalid choice", "'trian'")),
]

OVERWRITE_CASES = [
    Case("run:--overwrite with classes not in the data", lambda e: _overwrite(e, data={"classes": ["pos", "meh"]}),
         ("data.classes", "'meh'"), defect=1),
    Case("run:--overwrite with blank labels", lambda e: _overwrite(e, data={"train": e.data(
        "nan.tsv", GOOD_TSV + "odd film\t\n")}), ("label column 'label'", "nan.tsv"), defect=1),
    Case("run:--overwrite with a missing column", lambda e: _overwrite(e, data={"text_column": "sentence"}),
         ("data.text_column", "'sentence'"), defect=1),
    Case("run:--overwrite with LoRA targets that do not exist", lambda e: _overwrite(e, strategy={
        "plugin": "lora", "options": {"target_modules": ["qkv_proj"]}}), ("target_modules", "qkv_proj"), defect=1),
    Case("run:--overwrite with weights that do not fit", lambda e: _overwrite(e, backbone={
        "weights": _wrong_keys(e)}), ("backbone.weights", "other.safetensors"), defect=1),
    Case("run:--overwrite with a single class", lambda e: _overwrite(e, data={"train": e.data("one.tsv", ONE_CLASS),
                                                                               "eval": e.data("one-dev.tsv", ONE_CLASS)}),
         ("label column 'label'", "one.tsv", "'pos'"), defect=1),
    Case("run:bad data leaves no new output_dir", lambda e: _r(e, e.text_recipe(
        output_dir=str(e.dir / "new-out"), data={"classes": ["pos", "meh"]})), ("data.classes", "'meh'"), defect=1),
    Case("run:bad model leaves no new output_dir", lambda e: _r(e, e.text_recipe(
        output_dir=str(e.dir / "new-out"), backbone={"weights": _wrong_keys(e)})), ("backbone.weights",), defect=1),
]


def _t(e: Env, **data: Any) -> list[str]:
    return _r(e, e.text_recipe(data=data))


DATA_CASES = [
    Case("validate:missing train file", lambda e: _v(e, e.text_recipe(data={"train": "absent.tsv"})),
         ("data.train", "absent.tsv", "not found")),
    Case("validate:missing eval file", lambda e: _v(e, e.text_recipe(data={"eval": "absent.tsv"})),
         ("data.eval", "absent.tsv", "not found")),
    Case("validate:train file is a folder", lambda e: _v(e, e.text_recipe(data={"train": str(e.folder("d"))})),
         ("data.train", "folder"), defect=2),
    Case("run:train file is a folder", lambda e: _t(e, train=str(e.folder("d"))), ("data.train", "folder"), defect=2),
    Case("validate:train file unreadable", lambda e: _v(e, e.text_recipe(data={"train": _unreadable(
        e, "locked.tsv", GOOD_TSV)})), ("data.train", "locked.tsv", "permission"), user="nobody", defect=2),
    Case("run:eval file unreadable", lambda e: _t(e, eval=_unreadable(e, "locked.tsv", GOOD_TSV)),
         ("data.eval", "locked.tsv", "permission"), user="nobody", defect=2),
    Case("validate:empty file", lambda e: _v(e, e.text_recipe(data={"train": e.data("empty.tsv", b"")})),
         ("data.train", "empty.tsv", "is empty")),
    Case("validate:whitespace file", lambda e: _v(e, e.text_recipe(data={"train": e.data("ws.tsv", "  \n\n")})),
         ("data.train", "ws.tsv", "whitespace")),
    Case("validate:header but no rows", lambda e: _v(e, e.text_recipe(data={"train": e.data("h.tsv", "text\tlabel\n")})),
         ("data.train", "h.tsv", "no rows")),
    Case("validate:non-UTF-8 text", lambda e: _v(e, e.text_recipe(data={"train": e.data("latin1.tsv", LATIN1)})),
         ("data.train", "latin1.tsv", "UTF-8")),
    Case("validate:non-UTF-8 eval", lambda e: _v(e, e.text_recipe(data={"eval": e.data("latin1.tsv", LATIN1)})),
         ("data.eval", "latin1.tsv", "UTF-8")),
    Case("run:missing text column", lambda e: _t(e, text_column="sentence"),
         ("data.text_column", "'sentence'", "text, label")),
    Case("run:missing label column", lambda e: _t(e, label_column="sentiment"), ("data.label_column", "'sentiment'")),
    Case("run:missing pair column", lambda e: _t(e, text_pair_column="hypothesis"),
         ("data.text_pair_column", "'hypothesis'")),
    Case("run:missing image column", lambda e: _r(e, e.image_recipe(data={
        "format": "csv", "train": str(e.root / T), "eval": str(e.root / "dev.tsv")})), ("data.image_column", "'image'")),
    Case("run:missing label values (NaN)", lambda e: _t(e, train=e.data("nan.tsv", GOOD_TSV + "odd film\t\n")),
         ("label column 'label'", "nan.tsv", "fill or drop")),
    Case("run:empty text", lambda e: _t(e, train=e.data("blank.tsv", GOOD_TSV + "  \tpos\n")),
         ("data.text_column", "blank.tsv", "row 8")),
    Case("run:eval labels outside the training labels", lambda e: _t(e, eval=e.data(
        "dev3.tsv", GOOD_TSV + "so-so film\tmixed\n")), ("data.eval", "'mixed'")),
    Case("run:classes unseen in training", lambda e: _t(e, classes=["pos", "meh"]), ("data.classes", "'meh'")),
    Case("run:wrong CSV delimiter", lambda e: _t(e, delimiter=";"), ("data.delimiter", "train.tsv", "not \";\"")),
    Case("run:a single class", lambda e: _t(e, train=e.data("one.tsv", ONE_CLASS)),
         ("label column 'label'", "one.tsv", "'pos'", "two"), defect=5),
    Case("run:a single class after data.classes", lambda e: _t(e, classes=["pos"]),
         ("data.classes", "'pos'", "two"), defect=5),
    Case("run:a single class, held-out eval", lambda e: _t(e, train=e.data("one.tsv", ONE_CLASS), eval=None),
         ("label column 'label'", "one.tsv", "two"), defect=5),
    Case("run:eval file lacks the label column", lambda e: _t(e, eval=e.data("nolabel.tsv", "text\nfine film\n")),
         ("data.label_column", "nolabel.tsv", "'label'"), defect=5),
    Case("run:eval file lacks the text column", lambda e: _t(e, eval=e.data("notext.tsv", "sentence\tlabel\nok\tpos\n")),
         ("data.text_column", "notext.tsv", "'text'"), defect=5),
    Case("run:ragged CSV row", lambda e: _t(e, train=e.data("ragged.tsv", RAGGED)),
         ("data.train", "ragged.tsv", "line 10"), defect=5),
    Case("run:ragged eval CSV row", lambda e: _t(e, eval=e.data("ragged.tsv", RAGGED)),
         ("data.eval", "ragged.tsv", "line 10"), defect=5),
    Case("run:JSON in a column layout", lambda e: _r(e, e.text_recipe(data={
        "format": "json", "train": e.data("cols.json", COLUMNS_JSON), "eval": None})),
         ("data.train", "cols.json", "JSON Lines"), defect=5),
    Case("run:JSON Lines with a broken line", lambda e: _r(e, e.text_recipe(data={
        "format": "json", "train": e.data("b.jsonl", '{"text": "good", "label": "pos"}\n{"text": oops\n'),
        "eval": None})), ("data.train", "b.jsonl", "line 2"), defect=5),
    Case("run:parquet file that is not parquet", lambda e: _r(e, e.text_recipe(data={
        "format": "parquet", "train": e.data("t.parquet", "text,label\n"), "eval": None})),
         ("data.train", "t.parquet", "parquet")),
    Case("run:corrupt image", lambda e: (e.file("img/dog/broken.jpg", b"\xff\xd8 no JPEG"), _png(e, "img/dog/a.png"),
                                         _png(e, "img/cat/a.png"), _r(e, e.image_recipe(data={
                                             "train": str(e.dir / "img")})))[-1],
         ("data.image_column", "broken.jpg", "remove or replace")),
    Case("run:image folder without images", lambda e: _r(e, e.image_recipe(data={"train": str(e.folder("nothing"))})),
         ("nothing", "no images found")),
    Case("run:image folder of one class", lambda e: (_png(e, "one/cat/a.png"), _png(e, "one/cat/b.png"),
                                                     _r(e, e.image_recipe(data={"train": str(e.dir / "one")})))[-1],
         ("one", "'cat'", "two"), defect=5),
    Case("validate:missing image folder", lambda e: _v(e, e.image_recipe(data={"eval": "no-such-folder"})),
         ("data.eval", "no-such-folder")),
    Case("validate:image folder is a file", lambda e: _v(e, e.image_recipe(data={"train": e.data("f.png", "x")})),
         ("data.train", "f.png", "is a file")),
    Case("run:unknown digits split", lambda e: _r(e, e.image_recipe(data={"format": "digits", "train": "training"})),
         ("data.train", "'training'")),
    Case("validate:image size below 8", lambda e: _v(e, e.image_recipe(data={"image_size": 4})), ("data.image_size",)),
    Case("validate:hf without a name", lambda e: _v(e, e.text_recipe(data={"format": "hf", "train": None,
                                                                          "eval": None})), ("data.name",)),
    Case("run:regression labels that are not numbers", lambda e: _t(e, task="regression"),
         ("label column 'label'", "not a number")),
]

MODEL_CASES = [
    Case("validate:unknown backbone plugin", lambda e: _v(e, e.text_recipe(backbone={"plugin": "berty"})),
         ("backbone.plugin", "'berty'", "'bert'")),
    Case("validate:missing local model directory", lambda e: _v(e, e.text_recipe(backbone={
        "model": str(e.dir / "no-model")})), ("backbone.model", "no-model")),
    Case("run:model directory without config", lambda e: _r(e, e.text_recipe(backbone={"model": str(e.folder("m"))})),
         ("backbone.model", "/m")),
    Case("run:model directory with truncated weights", lambda e: _r(e, e.text_recipe(backbone={
        "model": _model_dir_with_truncated_weights(e)})), ("model.safetensors", "truncated"), defect=3),
    Case("plan:model directory with truncated weights", lambda e: ["plan", e.write(e.text_recipe(backbone={
        "model": _model_dir_with_truncated_weights(e)}))], ("model.safetensors", "truncated"), defect=3),
    Case("validate:missing weights file", lambda e: _v(e, e.image_recipe(backbone={"weights": "absent.safetensors"})),
         ("backbone.weights", "absent.safetensors")),
    Case("run:weights file with wrong keys", lambda e: _r(e, e.image_recipe(backbone={"weights": _wrong_keys(e)})),
         ("backbone.weights", "other.safetensors", "does not fit")),
    Case("run:text weights file with wrong keys", lambda e: _r(e, e.text_recipe(backbone={"weights": _wrong_keys(e)})),
         ("backbone.weights", "other.safetensors", "does not fit")),
    Case("run:weights file that is not weights", lambda e: _r(e, e.image_recipe(backbone={"weights": e.data(
        "w.pth", "not a pickle")})), ("backbone.weights", "w.pth")),
    Case("run:truncated safetensors weights", lambda e: _r(e, e.image_recipe(backbone={"weights": (
        _truncated(Path(p := _wrong_keys(e))), p)[1]})), ("backbone.weights", "other.safetensors", "truncated"),
         defect=3),
    Case("run:safetensors that is not safetensors", lambda e: _r(e, e.image_recipe(backbone={"weights": e.data(
        "w.safetensors", b"\x00" * 64)})), ("backbone.weights", "w.safetensors", "not a safetensors")),
    Case("run:pth holding a pickled module", lambda e: _r(e, e.image_recipe(backbone={"weights": _pickled_module(e)})),
         ("backbone.weights", "module.pth", "state_dict()"), defect=3),
    Case("run:pth holding a list", lambda e: _r(e, e.image_recipe(backbone={"weights": _tensor_list(e)})),
         ("backbone.weights", "list.pth", "not a state dict")),
    Case("run:unreadable weights file", lambda e: _r(e, e.image_recipe(backbone={"weights": _unreadable(
        e, "w.safetensors", "x")})), ("backbone.weights", "w.safetensors", "permission"), user="nobody", defect=2),
    Case("validate:init_from a folder that is not a run", lambda e: _v(e, e.text_recipe(backbone={
        "init_from": str(e.folder("empty-run"))})), ("backbone.init_from", "empty-run")),
    Case("validate:init_from a run of another backbone", lambda e: _v(e, e.text_recipe(backbone={
        "init_from": str(e.world.runs["image"])})), ("backbone.init_from", "'resnet'")),
    Case("validate:init_from a missing path", lambda e: _v(e, e.text_recipe(backbone={"init_from": "nowhere"})),
         ("backbone.init_from", "'nowhere'", "not found")),
    Case("validate:init_from an invalid recipe", lambda e: _v(e, e.text_recipe(backbone={
        "init_from": e.data("src.yaml", "name: [")})), ("backbone.init_from", "src.yaml")),
    Case("validate:backbone option of the wrong type", lambda e: _v(e, e.image_recipe(backbone={"options": {
        "hflip": "often"}})), ("backbone.options.hflip",)),
    Case("validate:unknown backbone option", lambda e: _v(e, e.text_recipe(backbone={"options": {"trust_code": True}})),
         ("backbone.options", "trust_code")),
    Case("run:unknown timm model", lambda e: _r(e, e.image_recipe(backbone={"model": "resnet1800"})),
         ("backbone.model", "'resnet1800'")),
]

STRATEGY_CASES = [
    Case("validate:unknown strategy plugin", lambda e: _v(e, e.text_recipe(strategy={"plugin": "lora2"})),
         ("strategy.plugin", "'lora2'", "'lora'")),
    Case("run:LoRA target modules that do not exist", lambda e: _r(e, e.text_recipe(strategy={
        "plugin": "lora", "options": {"target_modules": ["qkv_proj"]}})), ("target_modules", "qkv_proj")),
    Case("validate:LoRA rank of the wrong type", lambda e: _v(e, e.text_recipe(strategy={
        "plugin": "lora", "options": {"r": "eight"}})), ("strategy.options.r",)),
    Case("validate:LoRA rank zero", lambda e: _v(e, e.text_recipe(strategy={"plugin": "lora", "options": {"r": 0}})),
         ("strategy.options.r",)),
    Case("validate:unknown LoRA option", lambda e: _v(e, e.text_recipe(strategy={
        "plugin": "lora", "options": {"rank": 4}})), ("strategy.options", "rank")),
    Case("validate:head-only given options", lambda e: _v(e, e.text_recipe(strategy={
        "plugin": "head-only", "options": {"r": 4}})), ("strategy.options", "head-only", "no options"), defect=6),
    Case("run:head-only given options", lambda e: _r(e, e.text_recipe(strategy={
        "plugin": "head-only", "options": {"lr": 1}})), ("strategy.options", "head-only", "no options"), defect=6),
    Case("validate:unknown full option", lambda e: _v(e, e.text_recipe(strategy={"options": {"r": 4}})),
         ("strategy.options.r", "unknown option")),
    Case("validate:layer decay above 1", lambda e: _v(e, e.text_recipe(strategy={"options": {"layer_decay": 2}})),
         ("strategy.options.layer_decay",)),
    Case("validate:options given as a list", lambda e: _v(e, e.text_recipe(strategy={"options": [1]})),
         ("strategy.options",)),
]


def _p(run: str | Path, *args: str) -> list[str]:
    return ["predict", str(run), *args]


PREDICT_CASES = [
    Case("predict:a folder that is not a run", lambda e: _p(e.out, str(e.root / T)), ("out", "not a finished run")),
    Case("predict:a run folder that does not exist", lambda e: _p(e.dir / "gone", str(e.root / T)),
         ("gone", "not a finished run")),
    Case("predict:missing input file", lambda e: _p(e.world.runs["text"], "absent.txt"), ("absent.txt", "no such")),
    Case("predict:empty text file", lambda e: _p(e.world.runs["text"], e.data("empty.txt", "")),
         ("empty.txt", "no examples"), defect=4),
    Case("predict:blank text file", lambda e: _p(e.world.runs["text"], e.data("blank.txt", "\n  \n")),
         ("blank.txt", "no examples"), defect=4),
    Case("predict:CSV with a header only", lambda e: _p(e.world.runs["text"], e.data("h.csv", "text,label\n")),
         ("h.csv", "no rows"), defect=4),
    Case("predict:empty CSV", lambda e: _p(e.world.runs["text"], e.data("e.csv", "")), ("e.csv", "empty"), defect=4),
    Case("predict:CSV without the text column", lambda e: _p(e.world.runs["text"], e.data("s.csv", "sentence\nok\n")),
         ("s.csv", "'text'", "--column")),
    Case("predict:--column that is not there", lambda e: _p(e.world.runs["text"], str(e.root / T), "--column", "body"),
         ("'body'", "--column")),
    Case("predict:image given to a text model", lambda e: _p(e.world.runs["text"], _png(e, "cat.png")),
         ("cat.png", "image", "text model"), defect=4),
    Case("predict:text given to an image model", lambda e: _p(e.world.runs["image"], e.data("s.txt", "good film\n")),
         ("s.txt", "not an image"), defect=4),
    Case("predict:non-UTF-8 text file", lambda e: _p(e.world.runs["text"], e.data("l.txt", "caf\xe9\n".encode(
        "latin-1"))), ("l.txt", "UTF-8"), defect=4),
    Case("predict:non-UTF-8 CSV", lambda e: _p(e.world.runs["text"], e.data("l.csv", LATIN1.replace(b"\t", b","))),
         ("l.csv", "UTF-8"), defect=4),
    Case("predict:ragged CSV", lambda e: _p(e.world.runs["text"], e.data("r.tsv", RAGGED)), ("r.tsv", "line 10"),
         defect=4),
    Case("predict:JSON Lines with a broken line", lambda e: _p(e.world.runs["text"], e.data(
        "b.jsonl", '{"text": "good"}\n{"text": oops\n')), ("b.jsonl", "line 2"), defect=4),
    Case("predict:--batch-size 0", lambda e: _p(e.world.runs["text"], str(e.root / T), "--batch-size", "0"),
         ("--batch-size", "at least 1"), defect=4),
    Case("predict:--batch-size -3", lambda e: _p(e.world.runs["text"], str(e.root / T), "--batch-size", "-3"),
         ("--batch-size", "at least 1"), defect=4),
    Case("predict:--top-k 0", lambda e: _p(e.world.runs["text"], str(e.root / T), "--top-k", "0"),
         ("--top-k", "at least 1")),
    Case("predict:--batch-size not a number", lambda e: _p(e.world.runs["text"], str(e.root / T), "--batch-size", "x"),
         ("--batch-size", "'x'")),
    Case("predict:a folder given to a text model", lambda e: _p(e.world.runs["text"], str(e.folder("texts"))),
         ("texts", "folder"), defect=4),
    Case("predict:unreadable input", lambda e: _p(e.world.runs["text"], _unreadable(e, "s.txt", "good\n")),
         ("s.txt", "permission"), user="nobody", defect=2),
    Case("predict:--output in a missing folder", lambda e: _p(e.world.runs["text"], str(e.root / T), "--output",
                                                              str(e.dir / "no" / "p.jsonl")),
         ("--output", "no/p.jsonl", "No such file"), defect=2),
    Case("predict:--output is a folder", lambda e: _p(e.world.runs["text"], str(e.root / T), "--output", str(e.out)),
         ("--output", "out", "folder"), defect=2),
    Case("predict:corrupt image", lambda e: _p(e.world.runs["image"], e.data("broken.jpg", b"\xff\xd8 no JPEG")),
         ("broken.jpg", "as an image")),
    Case("predict:image folder without images", lambda e: _p(e.world.runs["image"], str(e.folder("none"))),
         ("none", "no images")),
    Case("predict:parquet file that is not parquet", lambda e: _p(e.world.runs["text"], e.data("g.parquet", "garbage\n")),
         ("g.parquet", "Parquet")),
    Case("predict:truncated weights", lambda e: _p(_run_with_truncated_weights(e), str(e.root / T)),
         ("model.safetensors", "truncated"), defect=3),
    Case("predict:truncated image weights", lambda e: _p(_run_with_truncated_weights(e, "image"), _png(e, "a.png")),
         ("model.safetensors", "truncated"), defect=3),
    Case("predict:run metadata that is not JSON", lambda e: _p((lambda r: ((r / "model" / "tl_toolkit.json").write_text(
        "{"), r)[1])(e.run_copy("text")), str(e.root / T)), ("tl_toolkit.json", "JSON"), defect=3),
    Case("predict:run of a plugin that is not installed", lambda e: _p(_meta(
        e, lambda m: m["backbone"].update(plugin="gone")), str(e.root / T)), ("'gone'",)),
    Case("predict:model folder without weights", lambda e: _p((lambda r: ((r / "model" / "model.safetensors").unlink(),
                                                                           r)[1])(e.run_copy("text")), str(e.root / T)),
         ("model", "weights"), defect=3),
]


def _ev(run: str | Path, *args: str) -> list[str]:
    return ["eval", str(run), *args]


EVAL_CASES = [
    Case("eval:a folder that is not a run", lambda e: _ev(e.out), ("out", "not a finished run")),
    Case("eval:a run without recipe.yaml", lambda e: _ev((lambda r: ((r / "recipe.yaml").unlink(), r)[1])(
        e.run_copy("text"))), ("recipe.yaml", "missing")),
    Case("eval:missing eval file", lambda e: _ev(e.world.runs["text"], "data.eval=absent.tsv"),
         ("data.eval", "absent.tsv", "not found")),
    Case("eval:eval labels the model does not know", lambda e: _ev(e.world.runs["text"], "data.eval=" + e.data(
        "dev3.tsv", GOOD_TSV + "so-so film\tmixed\n")), ("data.eval", "'mixed'")),
    Case("eval:eval file without the label column", lambda e: _ev(e.world.runs["text"], "data.eval=" + e.data(
        "nolabel.tsv", "text\nfine film\n")), ("data.label_column", "nolabel.tsv"), defect=5),
    Case("eval:empty eval file", lambda e: _ev(e.world.runs["text"], "data.eval=" + e.data("e.tsv", "")),
         ("data.eval", "e.tsv", "empty")),
    Case("eval:non-UTF-8 eval file", lambda e: _ev(e.world.runs["text"], "data.eval=" + e.data("l.tsv", LATIN1)),
         ("data.eval", "l.tsv", "UTF-8")),
    Case("eval:ragged eval file", lambda e: _ev(e.world.runs["text"], "data.eval=" + e.data("r.tsv", RAGGED)),
         ("data.eval", "r.tsv", "line 10"), defect=5),
    Case("eval:unknown override key", lambda e: _ev(e.world.runs["text"], "data.evl=x.tsv"), ("data.evl", "'eval'")),
    Case("eval:override without '='", lambda e: _ev(e.world.runs["text"], "data.eval"), ("data.eval", "KEY=VALUE")),
    Case("eval:--batch-size 0", lambda e: _ev(e.world.runs["text"], "--batch-size", "0"),
         ("--batch-size", "at least 1"), defect=4),
    Case("eval:truncated weights", lambda e: _ev(_run_with_truncated_weights(e)), ("model.safetensors", "truncated"),
         defect=3),
    Case("eval:unreadable eval file", lambda e: _ev(e.world.runs["text"], "data.eval=" + _unreadable(
        e, "locked.tsv", GOOD_TSV)), ("data.eval", "locked.tsv", "permission"), user="nobody", defect=2),
    Case("eval:run folder that is read-only", lambda e: _ev((lambda r: (r.chmod(0o555), r)[1])(e.run_copy("text"))),
         ("eval.json", "permission denied"), user="nobody", defect=2),
]


def _x(run: str | Path, *args: str) -> list[str]:
    return ["export", str(run), *args]


EXPORT_CASES = [
    Case("export:a folder that is not a run", lambda e: _x(e.out, "--format", "hf"), ("out", "not a finished run")),
    Case("export:a format the backbone cannot write", lambda e: _x(e.world.runs["text"], "--format", "timm"),
         ("--format", "'timm'", "hf")),
    Case("export:an unknown format", lambda e: _x(e.world.runs["text"], "--format", "tflite"), ("--format", "tflite")),
    Case("export:LoRA run without --merge-lora", lambda e: _x(e.world.runs["lora"], "--format", "hf", "--output",
                                                              str(e.dir / "x")), ("LoRA", "--merge-lora")),
    Case("export:--output not empty", lambda e: _x(e.world.runs["text"], "--format", "hf", "--output", str(e.out)),
         ("--output", "not empty")),
    Case("export:--output is a file", lambda e: _x(e.world.runs["text"], "--format", "hf", "--output", e.data(
        "f", "x")), ("--output", "is a file"), defect=2),
    Case("export:--output under a file", lambda e: _x(e.world.runs["text"], "--format", "hf", "--output",
                                                      e.data("f", "x") + "/x"), ("--output", "f/x", "is a file"),
         defect=2),
    Case("export:--output in a read-only folder", lambda e: _x(e.world.runs["text"], "--format", "hf", "--output",
                                                               str(_readonly_folder(e) / "x")),
         ("--output", "locked", "not writable"), user="nobody", defect=2),
    Case("export:truncated weights", lambda e: _x(_run_with_truncated_weights(e), "--format", "hf", "--output",
                                                  str(e.dir / "x")), ("model.safetensors", "truncated"), defect=3),
    Case("export:no format", lambda e: _x(e.world.runs["text"]), ("--format",)),
]

COMPARE_CASES = [
    Case("compare:unknown strategy", lambda e: ["compare", e.write(e.text_recipe()), "--strategies", "lora,fulll"],
         ("--strategies", "'fulll'", "'full'")),
    Case("compare:recipe file missing", lambda e: ["compare", str(e.dir / "nope.yaml")], ("nope.yaml", "not found")),
    Case("compare:invalid recipe", lambda e: ["compare", e.write(e.text_recipe(train={"epoch": 1}))],
         ("train.epoch", "'epochs'")),
    Case("compare:missing data", lambda e: ["compare", e.write(e.text_recipe(data={"train": "absent.tsv"}))],
         ("data.train", "absent.tsv")),
    Case("compare:bad override", lambda e: ["compare", e.write(e.text_recipe()), "train.lr=fast"],
         ("train.lr", "fast")),
    Case("compare:--output is a file", lambda e: ["compare", e.write(e.text_recipe()), "--strategies", "full",
                                                  "--output", e.data("f", "x")], ("--output", "is a file"), defect=2),
    Case("compare:--output in a read-only folder", lambda e: ["compare", e.write(e.text_recipe()), "--strategies",
                                                              "full", "--output", str(_readonly_folder(e) / "c")],
         ("--output", "locked", "not writable"), user="nobody", defect=2),
    Case("compare:a single class", lambda e: ["compare", e.write(e.text_recipe(data={"train": e.data(
        "one.tsv", ONE_CLASS)})), "--strategies", "full"], ("label column 'label'", "one.tsv", "two"), defect=5),
    Case("compare:recipe unreadable", lambda e: ["compare", _unreadable(e, "r.yaml", "name: x\n")],
         ("r.yaml", "permission"), user="nobody", defect=2),
]

SWEEP_CASES = [
    Case("sweep:no space to search", lambda e: ["sweep", e.write(e.text_recipe()), "-q"],
         ("sweep.space", "nothing to search")),
    Case("sweep:--trials 0", lambda e: ["sweep", e.write(e.text_recipe(sweep={"space": {"train.lr": {
        "type": "float", "low": 1.0e-5, "high": 1.0e-3}}})), "--trials", "0", "-q"], ("--trials", "at least 1")),
]

WISE_FT_CASES = [
    Case("wise-ft:alpha above 1", lambda e: ["wise-ft", str(e.world.runs["text"]), "--alphas", "0,2"],
         ("--alphas", "between 0 and 1", "[0.0, 2.0]")),
    Case("wise-ft:alphas that are not numbers", lambda e: ["wise-ft", str(e.world.runs["text"]), "--alphas", "0,x"],
         ("--alphas", "'0,x'", "comma-separated list of numbers")),
]

PLAN_CASES = [
    Case("plan:--steps 0", lambda e: ["plan", e.write(e.text_recipe()), "--steps", "0"], ("--steps", "at least 1")),
    Case("plan:recipe file missing", lambda e: ["plan", str(e.dir / "nope.yaml")], ("nope.yaml", "not found")),
    Case("plan:invalid recipe", lambda e: ["plan", e.write(e.text_recipe(train={"lr": "high"}))], ("train.lr",)),
    Case("plan:missing data", lambda e: ["plan", e.write(e.text_recipe(data={"eval": "absent.tsv"}))],
         ("data.eval", "absent.tsv")),
    Case("plan:missing model directory", lambda e: ["plan", e.write(e.text_recipe(backbone={
        "model": str(e.dir / "nomodel")}))], ("backbone.model", "nomodel")),
    Case("plan:init_from a source recipe not run yet", lambda e: ["plan", e.write(e.text_recipe(backbone={
        "init_from": e.write(e.text_recipe(output_dir=str(e.dir / "src-run")), "src.yaml")}))],
         ("backbone.init_from: the source recipe", "src.yaml", "has no finished run", "run `tl run")),
    Case("plan:a single class", lambda e: ["plan", e.write(e.text_recipe(data={"train": e.data("one.tsv", ONE_CLASS)}))],
         ("label column 'label'", "one.tsv", "two"), defect=5),
    Case("plan:ragged data", lambda e: ["plan", e.write(e.text_recipe(data={"train": e.data("r.tsv", RAGGED)}))],
         ("data.train", "r.tsv", "line 10"), defect=5),
    Case("plan:recipe is a folder", lambda e: ["plan", str(e.folder("rd"))], ("rd", "directory")),
    Case("plan:head-only given options", lambda e: ["plan", e.write(e.text_recipe(strategy={
        "plugin": "head-only", "options": {"r": 2}}))], ("strategy.options", "head-only"), defect=6),
]


def _np(e: Env, name: str, *args: str) -> list[str]:
    return ["new-plugin", name, "--kind", "strategy", "--output", str(e.dir), *args]


NEW_PLUGIN_CASES = [
    Case("new-plugin:name with capitals", lambda e: _np(e, "MyAug"), ("'MyAug'", "start with a letter")),
    Case("new-plugin:name starting with a digit", lambda e: _np(e, "1aug"), ("'1aug'", "start with a letter")),
    Case("new-plugin:name with a dot", lambda e: _np(e, "my.aug"), ("'my.aug'",)),
    Case("new-plugin:folder exists", lambda e: (e.folder("myaug"), _np(e, "myaug"))[1], ("myaug", "already exists")),
    Case("new-plugin:unknown kind", lambda e: ["new-plugin", "x", "--kind", "dataset"], ("--kind", "'dataset'")),
    Case("new-plugin:no kind", lambda e: ["new-plugin", "x"], ("--kind",)),
    Case("new-plugin:--output is a file", lambda e: ["new-plugin", "x", "--kind", "strategy", "--output",
                                                     e.data("f", "x")], ("--output", "is a file"), defect=2),
    Case("new-plugin:--output in a read-only folder", lambda e: ["new-plugin", "x", "--kind", "backbone", "--output",
                                                                 str(_readonly_folder(e))],
         ("--output", "locked", "not writable"), user="nobody", defect=2),
    Case("new-plugin:--output that cannot be created", lambda e: ["new-plugin", "x", "--kind", "strategy",
                                                                  "--output", "/proc/tl"],
         ("--output", "/proc/tl", "cannot be created"), defect=2),
    Case("list:--verbose of an unknown plugin", lambda e: ["list", "--verbose", "lorra"], ("--verbose", "'lora'")),
]

CASES: list[Case] = [*RECIPE_CASES, *OUTPUT_CASES, *OVERWRITE_CASES, *DATA_CASES, *MODEL_CASES, *STRATEGY_CASES,
                     *PREDICT_CASES, *EVAL_CASES, *EXPORT_CASES, *COMPARE_CASES, *SWEEP_CASES, *WISE_FT_CASES, *PLAN_CASES,
                     *NEW_PLUGIN_CASES]


def drop_privileges() -> None:
    """In a forked child: become ``nobody``, so that file permissions apply (root reads everything)."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
