"""Checks of the files given to ``tl predict``, before the model loads.

An input a model cannot read (an image given to a text model, a text file
given to an image model, an empty or non-UTF-8 file, a CSV with a ragged row,
a broken image) is one sentence naming the file and what is wrong with it,
not a library's traceback from the middle of prediction. So is an ``--output``
that would replace what the command reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ._errors import UserError, os_error_message
from ._inputs import text_file_problems
from ._tables import table_shape_problem

__all__ = ["check_output_file", "check_predict_inputs"]

_IMAGES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_TABLES = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def check_predict_inputs(run_dir: str | Path, inputs: Sequence[str | Path], column: str | None = None) -> None:
    """Refuse inputs the run's model cannot read, naming the first bad file.

    Raises:
        UserError: not a finished run, or an input that is missing, unreadable, empty, or of the wrong kind.
    """
    from ._pipeline import MODEL_META, resolve_run_dir
    from ._registry import registry
    from ._run_files import check_model_dir

    model_dir = resolve_run_dir(run_dir)
    meta = check_model_dir(model_dir, MODEL_META)
    modality = getattr(registry.get("backbone", meta["backbone"]["plugin"]), "modality", "text")
    for raw in inputs:
        problem = _problem(Path(raw), modality)
        if problem:
            raise UserError(f"{raw}: {problem}")


def check_output_file(output: str, run_dir: str, inputs: Sequence[str]) -> None:
    """``--output FILE`` of ``tl predict``: a file in an existing folder that is neither an input nor the run's own.

    Raises:
        UserError: a folder, a file whose folder is missing, an input file, or a file of the run.
    """
    from ._output_dir import REPLACED
    from ._run_files import resolve_run_dir

    given = Path(output)
    if given.is_dir():
        raise UserError(f"--output: {output!r} is a folder; give the path of a file to write")
    if not given.absolute().parent.is_dir():
        raise UserError(f"--output: {output!r}: No such file or directory (its folder {str(given.parent)!r} "
                        f"does not exist); create the folder or choose another --output")
    target = given.resolve()
    run = resolve_run_dir(run_dir).resolve().parent  # the run folder, also when given its model/
    if target in {Path(i).resolve() for i in inputs}:
        raise UserError(f"--output: {output!r} is one of the inputs; writing the predictions there would replace "
                        f"it: choose another file")
    if any(target == run / name or run / name in target.parents for name in REPLACED):
        raise UserError(f"--output: {output!r} is a file of the run in {run_dir!r}; choose a file outside its "
                        f"model, summary and report")


def _problem(path: Path, modality: str) -> str | None:
    if not path.exists():
        return "no such input file or folder"
    suffix = path.suffix.lower()
    if path.is_dir():
        return None if modality == "image" else (
            "is a folder; a text model reads text files (one example a line) or CSV/TSV/JSONL/Parquet files")
    try:
        with path.open("rb"):
            pass
    except OSError as e:
        return f"cannot read it ({os_error_message(e, path=path).split(': ', 1)[-1]})"
    if modality == "image":
        if suffix not in _IMAGES:
            return (f"not an image file (suffix {suffix or 'none'!r}); this run's model reads images "
                    f"({', '.join(sorted(_IMAGES))}) or folders of them")
        return _image_problem(path)
    if suffix in _IMAGES:
        return ("is an image, but this run's model is a text model; give a text file (one example a line) "
                "or a CSV/TSV/JSONL/Parquet file")
    fmt = _TABLES.get(suffix)
    if fmt is None:
        return _text_problem(path)
    if fmt == "parquet":
        return _parquet_problem(path)
    problems = text_file_problems("input", path, fmt)
    if problems:
        return problems[0].split(": ", 1)[-1].replace(f"file '{path}' ", "")
    if fmt == "csv":
        return table_shape_problem(path, "\t" if suffix == ".tsv" else ",")
    return _jsonl_problem(path) if suffix == ".jsonl" else None


def _parquet_problem(path: Path) -> str | None:
    """A Parquet file whose footer pyarrow can read (the schema only: cheap)."""
    import pyarrow.parquet as pq

    try:
        pq.read_schema(path)
    except Exception as e:  # ArrowInvalid, OSError: what pyarrow raises for a file that is not Parquet
        first = str(e).strip().splitlines()[0].split(". ")[0].rstrip(".") if str(e).strip() else type(e).__name__
        return f"is not a readable Parquet file ({first}); re-save it with pandas' to_parquet or pyarrow"
    return None


def _text_problem(path: Path) -> str | None:
    """A text file of one example a line: UTF-8, and at least one line that is not blank."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return f"is not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); re-save it as UTF-8"
    if not any(line.strip() for line in text.splitlines()):
        return "holds no examples (it is empty or blank); give one example a line"
    return None


def _jsonl_problem(path: Path) -> str | None:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                return f"line {number} is not valid JSON ({e.args[0] if e.args else e}); one JSON object a line"
            if not isinstance(row, dict):
                return f"line {number} holds a {type(row).__name__}, not a JSON object; one object a line"
    return None


def _image_problem(path: Path) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as e:  # PIL raises many types for a broken file
        return f"cannot be read as an image ({type(e).__name__}: {e}); remove or replace it"
    return None
