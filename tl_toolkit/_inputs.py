"""Checks of the user's data files and examples that catch what would otherwise fail mid-training.

An empty file, a file that is not UTF-8, an example with no text or an image
that cannot be decoded all end a run with a library's traceback, often after
minutes of work. These checks run before training (the file checks already in
``tl validate``) and name the recipe key, the file, the row and the fix.
"""

from __future__ import annotations

import codecs
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import os_error_message

if TYPE_CHECKING:
    import datasets

__all__ = ["example_problems", "text_file_problems"]

_CHUNK = 1 << 20


def text_file_problems(key: str, path: Path, fmt: str) -> list[str]:
    """A folder where a file belongs, a file that cannot be read, an empty file, a CSV with a header and no
    rows, or bytes that are not UTF-8 (csv and json files)."""
    if fmt in ("csv", "json", "parquet") and path.is_dir():
        return [f"{key}: {str(path)!r} is a folder; format {fmt!r} reads one file (give the file's path)"]
    if fmt not in ("csv", "json", "parquet") or not path.is_file():
        return []
    try:
        with path.open("rb"):
            pass
    except OSError as e:
        return [f"{key}: cannot read {os_error_message(e, path=path)}"]
    if fmt == "parquet":
        return []
    if path.stat().st_size == 0:
        return [f"{key}: file '{path}' is empty; give a file with a header line and one example a line"]
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines, text_seen = 0, 0, False
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as e:
                line = lines + chunk[: e.start].count(b"\n") + 1
                return [f"{key}: file '{path}' is not UTF-8 text (byte 0x{chunk[e.start]:02x} at offset "
                        f"{offset + e.start}, line {line}); re-save it as UTF-8"]
            offset, lines = offset + len(chunk), lines + chunk.count(b"\n")
            text_seen = text_seen or bool(text.strip())
    if not text_seen:
        return [f"{key}: file '{path}' holds only whitespace; give a file with one example a line"]
    if fmt == "csv" and _data_lines(path) == 0:
        return [f"{key}: file '{path}' has a header line but no rows; add examples below the header"]
    return []


def _data_lines(path: Path) -> int:
    """Non-blank lines after the header (stops counting at one: only 'none' matters)."""
    with path.open(encoding="utf-8") as f:
        next(f, None)
        return next((1 for line in f if line.strip()), 0)


def example_problems(ds: datasets.Dataset, columns: dict[str, str], where: str) -> list[str]:
    """Rows with empty text, or images that cannot be decoded, in the input ``columns`` (column -> recipe key)."""
    import datasets as hf

    problems = []
    for column, key in columns.items():
        feature = ds.features.get(column)
        if isinstance(feature, hf.Image):
            problems.extend(_image_problems(ds, column, key, where))
        elif isinstance(feature, hf.Value) and feature.dtype in ("string", "large_string"):
            blank = [i for i, v in enumerate(ds[column]) if v is None or not v.strip()]
            if blank:
                problems.append(
                    f"data.{key}: {len(blank)} rows of {where!r} have no text in column {column!r} "
                    f"(first at row {blank[0]}); fill or drop them"
                )
    return problems


def _image_problems(ds: datasets.Dataset, column: str, key: str, where: str) -> list[str]:
    """Images whose header PIL cannot read: found now, not in the middle of an epoch."""
    import datasets as hf
    from PIL import Image

    raw = ds.cast_column(column, hf.Image(decode=False))[column]
    bad: list[tuple[int, str, str]] = []
    for i, item in enumerate(raw):
        source: Any = item.get("path") if item.get("bytes") is None else io.BytesIO(item["bytes"])
        try:
            with Image.open(source) as image:
                image.verify()
        except Exception as e:  # PIL raises many types for a broken file
            bad.append((i, str(item.get("path") or f"row {i}"), f"{type(e).__name__}: {e}"))
    if not bad:
        return []
    first = bad[0]
    return [f"data.{key}: {len(bad)} images in {where!r} cannot be read, first {first[1]!r} ({first[2]}); "
            f"remove or replace them"]
