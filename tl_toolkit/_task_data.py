"""Labels of the multi-label and regression tasks (``data.task``).

``_data.py`` reads every format and checks the columns; for these two task
kinds it hands the raw splits here, where the label column becomes a 0/1
vector over the label names (``multi_label``: a list cell, or a text cell of
names joined by ``data.label_separator``) or one float (``regression``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._data import TaskData
from ._errors import UserError

if TYPE_CHECKING:
    import datasets

    from ._recipe import DataConfig

__all__ = ["load_other_task"]


def load_other_task(
    train: datasets.Dataset, evals: datasets.Dataset | None, data: DataConfig, input_columns: list[str], seed: int
) -> TaskData:
    """Encode the labels of a ``multi_label`` or ``regression`` task, hold out and cap the splits.

    Raises:
        UserError: a missing or unreadable label, or eval labels never seen in training.
    """
    if data.task == "regression":
        label_names = [data.label_column]
        train = _encoded(train, data, "train", lambda v: _number(v))
        evals = None if evals is None else _encoded(evals, data, "eval", lambda v: _number(v))
    else:
        names = data.classes or sorted({n for cell in train[data.label_column] for n in _names(cell, data)})
        index = {n: i for i, n in enumerate(names)}
        unseen = [] if evals is None else sorted(
            {n for cell in evals[data.label_column] for n in _names(cell, data)} - set(index))
        if unseen and not data.classes:
            raise UserError(f"data.eval: labels {unseen[:10]} in {data.eval!r} never occur in training data "
                            f"(training labels: {names[:20]}); fix the eval labels or set data.classes")

        def multi_hot(cell: Any) -> list[float]:
            row = [0.0] * len(names)
            for n in _names(cell, data):
                if n in index:
                    row[index[n]] = 1.0
            return row

        label_names = list(names)
        train = _encoded(train, data, "train", multi_hot)
        evals = None if evals is None else _encoded(evals, data, "eval", multi_hot)
    if evals is None:
        split = train.train_test_split(test_size=data.eval_fraction, seed=seed)
        train, evals = split["train"], split["test"]
    train = train.shuffle(seed=seed)
    if data.max_train_samples:
        train = train.select(range(min(data.max_train_samples, len(train))))
    if data.max_eval_samples:
        evals = evals.shuffle(seed=seed).select(range(min(data.max_eval_samples, len(evals))))
    keep = [*input_columns, "labels"]
    train = train.remove_columns([c for c in train.column_names if c not in keep])
    evals = evals.remove_columns([c for c in evals.column_names if c not in keep])
    return TaskData(train=train, eval=evals, label_names=label_names, input_columns=input_columns)


def _encoded(ds: datasets.Dataset, data: DataConfig, split: str, encode: Any) -> datasets.Dataset:
    """``ds`` with a ``labels`` column made by ``encode`` from each label cell.

    An empty cell is an error for regression; for multi-label it is an example with no label.
    """
    column = data.label_column
    values = ds[column]
    bad = [i for i, v in enumerate(values) if v is None or (isinstance(v, float) and v != v)]
    if bad and data.task == "regression":
        raise UserError(f"data.{split}: {len(bad)} rows of {getattr(data, split)!r} have no value in label column "
                        f"{column!r} (first at row {bad[0]}); fill or drop them")
    try:
        return ds.map(lambda b: {"labels": [encode(v) for v in b[column]]}, batched=True)
    except ValueError as e:
        raise UserError(f"data.{split}: label column {column!r} of {getattr(data, split)!r}: {e}") from None


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number; data.task 'regression' needs numeric labels") from None


def _names(cell: Any, data: DataConfig) -> list[str]:
    """The label names in one multi-label cell: a list, or text joined by ``data.label_separator``."""
    if cell is None:
        return []
    parts = cell if isinstance(cell, list) else str(cell).split(data.label_separator)
    return [p for p in (str(x).strip() for x in parts) if p]
