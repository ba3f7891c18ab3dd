"""Prediction with a finished run: ``tl predict`` and :func:`predict`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._data import IMAGE_SUFFIXES
from ._errors import UserError
from ._pipeline import LoadedModel, load_model_dir

if TYPE_CHECKING:
    import datasets

__all__ = ["predict", "read_examples", "read_inputs"]

_TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def read_inputs(paths: Sequence[str | Path], loaded: LoadedModel, column: str | None = None) -> tuple[
    datasets.Dataset, list[str]
]:
    """Turn input files into a dataset with the column the model reads, and a display string per row.

    Text models read text files (one example a line) and CSV/TSV/JSONL/Parquet
    files (``column``, default the recipe's ``data.text_column``); image models
    read image files and folders of them.

    Raises:
        UserError: a file is missing, unreadable, or lacks the column.
    """
    import datasets

    data = loaded.backbone.data
    if loaded.backbone.modality == "image":
        files: list[Path] = []
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
            elif path.is_file():
                files.append(path)
            else:
                raise UserError(f"{raw}: no such image file or folder")
        if not files:
            raise UserError(f"{', '.join(map(str, paths))}: no images found")
        ds = datasets.Dataset.from_dict({data.image_column: [str(f) for f in files]})
        return ds.cast_column(data.image_column, datasets.Image()), [str(f) for f in files]

    text_col = data.text_column
    columns = [text_col] + ([data.text_pair_column] if data.text_pair_column else [])
    # Where each model column is read from in a table file: --column renames the text column.
    sources = {text_col: column or text_col, **({data.text_pair_column: data.text_pair_column}
                                                 if data.text_pair_column else {})}
    rows: dict[str, list[Any]] = {c: [] for c in columns}
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise UserError(f"{raw}: no such input file")
        fmt = _TABLE_SUFFIXES.get(path.suffix.lower())
        if fmt is None:
            lines = [ln for ln in path.read_text(encoding="utf-8", errors="strict").splitlines() if ln.strip()]
            if len(columns) > 1:
                raise UserError(f"{raw}: this model reads sentence pairs; give a CSV/JSONL file with "
                                f"columns {columns}")
            rows[text_col].extend(lines)
            continue
        kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        table = datasets.load_dataset(fmt, data_files=str(path), split="train", **kwargs)
        for c in columns:
            src = sources[c]
            if src not in table.column_names:
                raise UserError(f"{raw}: no column {src!r} (columns: {', '.join(table.column_names)}); "
                                f"choose the text column with --column")
            # A list cell (the words of a token-classification example) stays a list.
            rows[c].extend("" if v is None else v if isinstance(v, list) else str(v) for v in table[src])
    ds = datasets.Dataset.from_dict(rows)
    shown = [" ".join(map(str, v)) if isinstance(v, list) else v for v in rows[text_col]]
    return ds, shown


def read_examples(examples: Sequence[Any], loaded: LoadedModel) -> tuple[datasets.Dataset, list[str]]:
    """In-memory examples of a text model as the dataset :func:`read_inputs` makes from files.

    Each example is a string, a ``(first, second)`` pair for a model trained on sentence pairs, or
    a list of words for a token tagger that should tag given words.

    Raises:
        UserError: an example of another shape, or examples for an image model (give its files).
    """
    import datasets

    data = loaded.backbone.data
    if loaded.backbone.modality != "text":
        raise UserError(f"examples: this is a {loaded.backbone.modality} model; give its inputs as files "
                        f"(predict(run, [path, ...]))")
    pair = data.text_pair_column
    rows: dict[str, list[Any]] = {data.text_column: [], **({pair: []} if pair else {})}
    for i, example in enumerate(examples):
        if pair and isinstance(example, (tuple, list)) and len(example) == 2 and all(
                isinstance(x, str) for x in example):
            rows[data.text_column].append(example[0])
            rows[pair].append(example[1])
        elif not pair and (isinstance(example, str) or (isinstance(example, list) and example and all(
                isinstance(x, str) for x in example))):
            rows[data.text_column].append(example)
        else:
            wanted = "a (first, second) pair of strings" if pair else "a string (or a list of words)"
            raise UserError(f"examples[{i}]: got {type(example).__name__} {example!r:.60}; this model reads "
                            f"{wanted} per example")
    shown = [" ".join(v) if isinstance(v, list) else v for v in rows[data.text_column]]
    return datasets.Dataset.from_dict(rows), shown


def predict(
    run_dir: str | Path | LoadedModel,
    inputs: Sequence[str | Path] = (),
    *,
    examples: Sequence[Any] | None = None,
    column: str | None = None,
    batch_size: int = 64,
    top_k: int = 1,
) -> list[dict[str, Any]]:
    """Predict with a finished run on the files in ``inputs``, or on in-memory ``examples``.

    Args:
        run_dir: a finished run's directory (or its ``model/``), or what :func:`load_model_dir`
            returned for it, to predict many times without loading it again.
        inputs: files, as ``tl predict`` takes them: text files (one example a line), CSV/TSV/JSONL/
            Parquet tables (``column``: the text column, default the recipe's), images or folders of them.
        examples: instead of files, for text models: strings, ``(first, second)`` pairs for a model
            trained on sentence pairs, or lists of words for a token tagger.

    Returns:
        One dict per example: ``input`` and the task's answer. Classification: ``label``, ``score``
        (softmax probability) and, when ``top_k > 1``, ``top_k`` as a list of ``{label, score}``;
        multi-label: the lists of labels and scores; regression: the value as ``score``; token
        classification: ``entities`` with character offsets (or per-word ``tags`` for given words).

    Raises:
        UserError: ``run_dir`` holds no finished run, or an input cannot be read.
    """
    import torch
    from torch.utils.data import DataLoader

    if isinstance(inputs, (str, Path)):
        raise UserError(f"inputs: got the single {type(inputs).__name__} {str(inputs)!r:.60}; give a list of files "
                        f"([path, ...]), or examples=[text, ...] for in-memory texts")
    if (examples is None) == (not inputs):
        raise UserError("predict: give either inputs (a list of files) or examples (a list of texts), "
                        "not " + ("both" if examples is not None else "neither"))
    loaded = run_dir if isinstance(run_dir, LoadedModel) else load_model_dir(run_dir)
    task = loaded.task
    assert task is not None  # load_model_dir sets it up
    ds, shown = read_examples(examples, loaded) if examples is not None else read_inputs(inputs, loaded, column)
    raw = task.prediction_inputs(ds, loaded.backbone)
    examples = raw.to_list()
    private = [c for c in raw.column_names if c.startswith("_")]
    ds = task.prepare(loaded.backbone, raw.remove_columns(private), train=False)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = loaded.model.to(device)
    out: list[dict[str, Any]] = []
    loader = DataLoader(ds, batch_size=batch_size, collate_fn=loaded.backbone.collate)
    with torch.no_grad():
        for batch in loader:
            logits = loaded.backbone.forward(model, {k: v.to(device) for k, v in batch.items()}).float().cpu()
            for row_logits, row_labels in zip(logits, batch["labels"], strict=True):
                i = len(out)
                out.append({"input": shown[i], **task.answer(row_logits, row_labels, examples[i], top_k=top_k)})
    return out
