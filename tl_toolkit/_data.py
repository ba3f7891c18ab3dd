"""Loading a recipe's data into ``datasets.Dataset`` splits with integer labels.

Every format ends in the same shape: a train and an eval split holding the
input column(s) the backbone reads and an integer ``labels`` column, plus the
label names (index -> name) that are saved next to the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import UserError, suggest
from ._inputs import example_problems, single_class_problem, text_file_problems

if TYPE_CHECKING:
    import datasets

    from ._recipe import DataConfig

__all__ = ["IMAGE_SUFFIXES", "TaskData", "check_data_paths", "load_task_data"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_FILE_FORMATS = {"csv", "json", "parquet"}


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
            if data.format == "imagefolder" and not path.is_dir():
                problems.append(f"data.{key}: folder {value!r} not found; give a folder of <class>/<image> files")
            elif data.format != "imagefolder" and not path.exists():
                problems.append(f"data.{key}: file {value!r} not found; check the path (relative to {Path.cwd()})")
            else:
                problems.extend(text_file_problems(f"data.{key}", path, data.format))
    if data.format == "hf" and not (data.name or data.train):
        problems.append("data.name: format 'hf' needs a dataset id or a local dataset directory")
    return problems


def load_task_data(data: DataConfig, modality: str, seed: int) -> TaskData:
    """Load, filter and label-encode the train and eval splits.

    Raises:
        UserError: a file, column or label problem, naming it.
    """
    problems = check_data_paths(data)
    if problems:
        raise UserError(problems)
    train, evals = _load_raw(data)
    input_columns = _input_columns(data, modality)
    train = _checked(train, data, input_columns, "train")
    if evals is not None:
        evals = _checked(evals, data, input_columns, "eval")
    if data.task != "classification":
        from ._task_data import load_other_task

        return load_other_task(train, evals, data, input_columns, seed)

    train = _with_string_labels(train, data.label_column, "train", data.train)
    if evals is not None:
        evals = _with_string_labels(evals, data.label_column, "eval", data.eval)
    if data.classes:
        wanted = set(data.classes)
        present = set(train.unique("_label"))
        missing = [c for c in data.classes if c not in present]
        if missing:
            raise UserError(
                f"data.classes: {missing} do not occur in the training labels of {data.train!r}; "
                f"labels there: {sorted(present)[:20]}"
            )
        train = train.filter(lambda b: [v in wanted for v in b["_label"]], batched=True)
        if evals is not None:
            evals = evals.filter(lambda b: [v in wanted for v in b["_label"]], batched=True)
        label_names = list(data.classes)
    else:
        label_names = _sorted_labels(train.unique("_label"))
    one_class = single_class_problem(data.label_column, data.train, data.classes, label_names)
    if one_class:
        raise UserError(one_class)
    if evals is None:
        train, evals = _hold_out(train, data.eval_fraction, seed)
    unseen = sorted(set(evals.unique("_label")) - set(label_names))
    if unseen:
        raise UserError(
            f"data.eval: labels {unseen[:10]} in {data.eval!r} never occur in training data "
            f"(training labels: {label_names[:20]}); fix the eval labels or set data.classes"
        )
    index = {name: i for i, name in enumerate(label_names)}

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[int]]:
        return {"labels": [index[v] for v in batch["_label"]]}

    train = train.shuffle(seed=seed)
    if data.max_train_per_class:
        counts: dict[str, int] = {}
        keep = []
        for i, label in enumerate(train["_label"]):
            counts[label] = counts.get(label, 0) + 1
            if counts[label] <= data.max_train_per_class:
                keep.append(i)
        train = train.select(keep)
    if data.max_train_samples:
        train = train.select(range(min(data.max_train_samples, len(train))))
    if data.max_eval_samples:
        evals = evals.shuffle(seed=seed).select(range(min(data.max_eval_samples, len(evals))))
    keep_cols = [*input_columns, "labels"]
    train = train.map(encode, batched=True)
    evals = evals.map(encode, batched=True)
    train = train.remove_columns([c for c in train.column_names if c not in keep_cols])
    evals = evals.remove_columns([c for c in evals.column_names if c not in keep_cols])
    if len(train) == 0:
        raise UserError(f"data.train: no training examples left in {data.train!r} after filtering")
    if len(evals) == 0:
        raise UserError(f"data.eval: no evaluation examples in {data.eval!r}")
    return TaskData(train=train, eval=evals, label_names=label_names, input_columns=input_columns)


def _hold_out(ds: datasets.Dataset, fraction: float, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Split off ``fraction`` of each class as eval data: every class lands in both splits."""
    import numpy as np

    labels = np.array(ds["_label"])
    rng = np.random.default_rng(seed)
    train_idx, eval_idx, rare = [], [], []
    for label in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == label)
        if len(idx) < 2:
            rare.append(label)
            continue
        rng.shuffle(idx)
        n_eval = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        eval_idx.extend(idx[:n_eval].tolist())
        train_idx.extend(idx[n_eval:].tolist())
    if rare:
        raise UserError(
            f"data.eval: classes {rare[:10]} have a single training example, too few to hold one out for "
            f"evaluation; give data.eval, add examples, or leave them out with data.classes"
        )
    return ds.select(sorted(train_idx)), ds.select(sorted(eval_idx))


def _input_columns(data: DataConfig, modality: str) -> list[str]:
    if modality == "image":
        return [data.image_column]
    cols = [data.text_column]
    if data.text_pair_column:
        cols.append(data.text_pair_column)
    return cols


def _checked(ds: datasets.Dataset, data: DataConfig, inputs: list[str], split: str) -> datasets.Dataset:
    where = getattr(data, split) or data.name or data.format
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


def _column_key(data: DataConfig, col: str) -> str:
    for key in ("text_column", "text_pair_column", "image_column"):
        if getattr(data, key) == col:
            return key
    return "label_column"


def _with_string_labels(ds: datasets.Dataset, column: str, split: str, where: str | None) -> datasets.Dataset:
    import datasets as hf

    feature = ds.features[column]
    if isinstance(feature, hf.ClassLabel):
        names = feature.names

        def to_str(batch: dict[str, list[Any]]) -> dict[str, list[str]]:
            return {"_label": [names[v] for v in batch[column]]}
    else:
        values = ds[column]
        bad = [i for i, v in enumerate(values) if v is None or (isinstance(v, float) and v != v)]
        if bad:
            raise UserError(
                f"data.{split}: {len(bad)} rows of {where!r} have no value in label column {column!r} "
                f"(first at row {bad[0]}); fill or drop them"
            )

        def to_str(batch: dict[str, list[Any]]) -> dict[str, list[str]]:
            return {"_label": [_label_text(v) for v in batch[column]]}

    return ds.map(to_str, batched=True)


def _label_text(value: Any) -> str:
    # 3.0 read from a CSV with missing values elsewhere is the label 3.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _sorted_labels(values: list[str]) -> list[str]:
    try:
        return sorted(values, key=int)
    except ValueError:
        return sorted(values)


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
    from ._tables import read_table

    kwargs: dict[str, Any] = {}
    if data.format == "csv":
        suffix = Path(data.train or "").suffix.lower()
        kwargs["delimiter"] = data.delimiter or ("\t" if suffix == ".tsv" else ",")
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
