"""Loading a recipe's data into ``datasets.Dataset`` splits with integer labels.

Every format ends in the same shape: a train and an eval split holding the
input column(s) the backbone reads and a ``labels`` column, plus the label
names (index -> name) that are saved next to the model. What a label is
(one class, several, a number, one tag per word) is the task plugin's
business (``data.task``): it encodes the label column, holds out eval data
and caps the training examples.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import UserError, suggest
from ._inputs import example_problems, text_file_problems

if TYPE_CHECKING:
    import datasets

    from ._recipe import DataConfig
    from ._task_api import TaskPlugin

__all__ = ["IMAGE_SUFFIXES", "TaskData", "check_data_paths", "load_task_data"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_FILE_FORMATS = {"csv", "json", "parquet", "conll"}


@dataclass
class TaskData:
    """The splits of one run, labels encoded."""

    train: datasets.Dataset
    eval: datasets.Dataset
    label_names: list[str]
    input_columns: list[str]


def check_data_paths(data: DataConfig) -> list[str]:
    """Problems with the files and folders a data section names (no loading)."""
    problems = []
    if data.format in _FILE_FORMATS | {"imagefolder"}:
        if data.train is None:
            problems.append(f"data.train: required for format {data.format!r}; give a file or folder path")
        for key in ("train", "eval"):
            value = getattr(data, key)
            if value is None:
                continue
            path = Path(value)
            if data.format == "imagefolder" and path.is_file():
                problems.append(f"data.{key}: {value!r} is a file; format imagefolder reads a folder of "
                                f"<class>/<image> files: give that folder")
            elif data.format == "imagefolder" and not path.is_dir():
                problems.append(f"data.{key}: folder {value!r} not found; give a folder of <class>/<image> files")
            elif data.format != "imagefolder" and not path.exists():
                problems.append(f"data.{key}: file {value!r} not found; check the path (relative to {Path.cwd()})")
            else:
                problems.extend(text_file_problems(f"data.{key}", path, data.format))
    if data.format == "hf" and not (data.name or data.train):
        problems.append("data.name: format 'hf' needs a dataset id or a local dataset directory")
    return problems


def load_task_data(data: DataConfig, modality: str, seed: int, task: TaskPlugin | None = None) -> TaskData:
    """Load the train and eval splits, check their columns, and let the task encode the labels.

    ``task`` is the run's task plugin (``data.task``); without it one is made from the registry.

    Raises:
        UserError: a file, column or label problem, naming it.
    """
    problems = check_data_paths(data)
    if problems:
        raise UserError(problems)
    if task is None:
        from ._registry import registry

        task = registry.get("task", data.task)(data)
    train, evals = _load_raw(data)
    input_columns = _input_columns(data, modality)
    train = _checked(train, data, input_columns, "train")
    if evals is not None:
        evals = _checked(evals, data, input_columns, "eval")
    train, evals, label_names = task.encode(train, evals)
    if evals is None:
        train, evals = task.hold_out(train, data.eval_fraction, seed)
    train = task.limit(train.shuffle(seed=seed))
    if data.max_train_samples:
        train = train.select(range(min(data.max_train_samples, len(train))))
    if data.max_eval_samples:
        evals = evals.shuffle(seed=seed).select(range(min(data.max_eval_samples, len(evals))))
    keep_cols = [*input_columns, "labels"]
    train = train.remove_columns([c for c in train.column_names if c not in keep_cols])
    evals = evals.remove_columns([c for c in evals.column_names if c not in keep_cols])
    if len(train) == 0:
        raise UserError(f"data.train: no training examples left in {data.train!r} after filtering")
    if len(evals) == 0:
        raise UserError(f"data.eval: no evaluation examples in {data.eval!r}")
    return TaskData(train=train, eval=evals, label_names=label_names, input_columns=input_columns)


def _input_columns(data: DataConfig, modality: str) -> list[str]:
    if modality == "image":
        return [data.image_column]
    cols = [data.text_column]
    if data.text_pair_column:
        cols.append(data.text_pair_column)
    return cols


def _checked(ds: datasets.Dataset, data: DataConfig, inputs: list[str], split: str) -> datasets.Dataset:
    where = getattr(data, split) or data.name or data.format
    missing = [c for c in [*inputs, data.label_column] if c not in ds.column_names]
    if missing and data.format == "csv":
        _refuse_other_delimiter(ds.column_names, missing, where, _delimiter(data))
    problems = []
    for col, key in [*((c, _column_key(data, c)) for c in inputs), (data.label_column, "label_column")]:
        if col not in ds.column_names:
            problems.append(
                f"data.{key}: column {col!r} not in {where!r}.{suggest(col, ds.column_names)} "
                f"Columns there: {', '.join(ds.column_names)}"
            )
    problems = problems or example_problems(ds, {c: _column_key(data, c) for c in inputs}, where)
    if problems:
        raise UserError(problems)
    return ds


def _delimiter(data: DataConfig) -> str:
    """The field separator of ``data``'s CSV files: ``data.delimiter``, else tab for a .tsv train file, else comma."""
    return data.delimiter or ("\t" if Path(data.train or "").suffix.lower() == ".tsv" else ",")


def _refuse_other_delimiter(columns: list[str], missing: list[str], where: str, used: str) -> None:
    """A header read whole (one column holding the missing names) means the file is separated by another character."""
    for name in columns:
        sep = next((s for s in ("\t", ",", ";", "|") if s in name and set(missing) & set(name.split(s))), None)
        if sep is not None:
            raise UserError(f"data.delimiter: the header of {where!r} is separated by {json.dumps(sep)}, not "
                            f"{json.dumps(used)}, so it reads as the single column {name!r}; set "
                            f"data.delimiter: {json.dumps(sep)}")


def _column_key(data: DataConfig, col: str) -> str:
    for key in ("text_column", "text_pair_column", "image_column"):
        if getattr(data, key) == col:
            return key
    return "label_column"


# -- formats ---------------------------------------------------------------


def _load_raw(data: DataConfig) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    if data.format == "digits":
        return _load_digits(data)
    if data.format == "imagefolder":
        train = _load_imagefolder(Path(data.train or ""), data.image_column, data.label_column)
        evals = _load_imagefolder(Path(data.eval), data.image_column, data.label_column) if data.eval else None
        return train, evals

    if data.format == "hf":
        return _load_hf(data)
    if data.format == "conll":
        from ._conll import read_conll

        return (read_conll(Path(data.train or ""), data, "train"),
                read_conll(Path(data.eval), data, "eval") if data.eval else None)
    from ._tables import read_table

    kwargs: dict[str, Any] = {}
    if data.format == "csv":
        kwargs["delimiter"] = _delimiter(data)
    # Each file on its own: a problem (a ragged line, a column the other file has) is named as that file's.
    train = read_table(data.format, data.train or "", "data.train", **kwargs)
    return train, read_table(data.format, data.eval, "data.eval", **kwargs) if data.eval else None


def _load_hf(data: DataConfig) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    import datasets

    name = data.name or ""
    train_split = data.train or "train"
    if name and Path(name).is_dir() and (Path(name) / "dataset_dict.json").exists():
        dd = datasets.load_from_disk(name)
        pick = lambda split: dd[split] if split in dd else _no_split(name, split, list(dd))  # noqa: E731
        return pick(train_split), pick(data.eval) if data.eval else None
    try:
        train = datasets.load_dataset(name, data.config, split=train_split)
        evals = datasets.load_dataset(name, data.config, split=data.eval) if data.eval else None
    except Exception as e:
        raise UserError(
            f"data.name: could not load dataset {name!r} (config {data.config!r}): {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}. Offline? Use a local copy (format csv/json/parquet "
            f"or a save_to_disk directory)."
        ) from None
    return train, evals


def _no_split(name: str, split: str, have: list[str]) -> Any:
    raise UserError(f"data.train/data.eval: split {split!r} not in {name!r}; splits there: {', '.join(have)}")


def _load_imagefolder(root: Path, image_column: str, label_column: str) -> datasets.Dataset:
    import datasets

    paths, labels, skipped = [], [], 0
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(class_dir.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(str(file))
                labels.append(class_dir.name)
            elif file.is_file():
                skipped += 1
    if skipped:
        log.warning("%s: skipped %d files that are not images (by suffix)", root, skipped)
    if not paths:
        raise UserError(f"{root}: no images found; expected <class>/<image> files such as cat/0001.jpg")
    ds = datasets.Dataset.from_dict({image_column: paths, label_column: labels})
    return ds.cast_column(image_column, datasets.Image())


def _load_digits(data: DataConfig) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """scikit-learn's 8x8 handwritten digits: a fixed stratified 75/25 train/test split."""
    import datasets
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    pixels = np.clip(bunch.images * 16, 0, 255).astype("uint8")  # 0..16 -> 0..255
    idx_train, idx_test = train_test_split(
        np.arange(len(pixels)), test_size=0.25, random_state=0, stratify=bunch.target
    )
    splits = {"train": idx_train, "test": idx_test}
    out: list[datasets.Dataset | None] = []
    for key in ("train", "eval"):
        split = getattr(data, key) or ("train" if key == "train" else None)
        if split is None:
            out.append(None)
            continue
        if split not in splits:
            raise UserError(f"data.{key}: format 'digits' has splits 'train' and 'test', not {split!r}")
        ids = splits[split]
        ds = datasets.Dataset.from_dict(
            {
                data.image_column: [Image.fromarray(pixels[i], mode="L") for i in ids],
                data.label_column: [int(bunch.target[i]) for i in ids],
            },
            features=datasets.Features({data.image_column: datasets.Image(), data.label_column: datasets.Value("int64")}),
        )
        out.append(ds)
    return out[0], out[1]
