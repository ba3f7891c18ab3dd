"""Reading one data file (CSV, JSON, Parquet) into a ``datasets.Dataset``, with errors that name it.

Each split is read on its own, so a problem names the file it is in: a CSV
row with more fields than its header names its line, a JSON file in a layout
the reader does not take says which layouts it takes, an eval file without a
column of the train file is reported by the column checks as that file's.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import UserError

if TYPE_CHECKING:
    import datasets

__all__ = ["JSON_LAYOUTS", "read_table", "table_shape_problem"]

JSON_LAYOUTS = ("JSON Lines (one object a line, e.g. {\"text\": ..., \"label\": ...})",
                "a JSON list of such objects")


def table_shape_problem(path: Path, delimiter: str) -> str | None:
    """The first line of a CSV file with more fields than its header, as a sentence (None when all fit)."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return None
        for row in reader:
            if len(row) > len(header):
                return (f"line {reader.line_num} has {len(row)} fields where the header has {len(header)} "
                        f"(delimiter {delimiter!r}); fix that line, or quote a field that holds the delimiter")
    return None


def read_table(fmt: str, path: str, key: str, **kwargs: Any) -> datasets.Dataset:
    """One file as a dataset; ``key`` (``data.train``) and the file name every problem.

    Raises:
        UserError: a ragged CSV line, an unsupported JSON layout, or a file the reader cannot parse.
    """
    import datasets

    if fmt == "csv":
        problem = table_shape_problem(Path(path), kwargs.get("delimiter") or ",")
        if problem:
            raise UserError(f"{key}: {path!r}: {problem}")
    if fmt == "json":
        problem = _json_layout_problem(Path(path))
        if problem:
            raise UserError(f"{key}: {path!r}: {problem}")
    try:
        return datasets.load_dataset(fmt, data_files={"train": path}, split="train", **kwargs)
    except Exception as e:  # pyarrow / pandas parse errors carry the useful text
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserError(f"{key}: could not read {path!r} as {fmt}: {type(e).__name__}: {text}") from None


def _json_layout_problem(path: Path) -> str | None:
    """A JSON file the reader would take wrongly or not at all: a broken JSON Lines line, or a single object
    (such as pandas' column-oriented ``{"text": {"0": ...}}``) instead of rows."""
    import json

    with path.open(encoding="utf-8") as f:
        head = f.read(1 << 16).lstrip()
    if head.startswith("["):
        return None
    try:
        whole = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        whole = None
    if isinstance(whole, dict) and whole and all(isinstance(v, dict | list) for v in whole.values()):
        return (f"a single JSON object of {len(whole)} keys ({', '.join(list(whole)[:4])}), not rows; the "
                f"layouts read are {' or '.join(JSON_LAYOUTS)}; pandas writes JSON Lines with "
                f"df.to_json(path, orient='records', lines=True)")
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError as e:
                detail = re.sub(r": line \d+ column \d+.*", "", str(e))
                return (f"line {number} is not valid JSON ({detail}); the layouts read are "
                        f"{' or '.join(JSON_LAYOUTS)}")
    return None
