"""Checks of a finished run's ``model/`` folder before its plugins load it.

A run folder copied in part, a weights file cut short, or a metadata file
edited by hand would otherwise surface as a library's exception that names
neither the file nor what is wrong with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._errors import UserError
from ._weights import weights_folder_problems

__all__ = ["MODEL_META", "check_model_dir", "damaged_model", "resolve_run_dir"]

#: The file a finished run's ``model/`` holds tl_toolkit's facts in (plugins, recipe sections, labels).
MODEL_META = "tl_toolkit.json"


def check_model_dir(model_dir: Path, meta_name: str) -> dict[str, Any]:
    """The run's metadata, once it parses and every weights file in the folder is whole.

    Raises:
        UserError: the metadata is not JSON, lacks a section, or a weights file is damaged.
    """
    meta_file = model_dir / meta_name
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{meta_file}: not valid JSON ({e}); the run's model folder is damaged: restore it "
                        f"or run the recipe again") from None
    missing = [k for k in ("backbone", "data", "strategy", "label_names") if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise UserError(f"{meta_file}: lacks {', '.join(missing)}; the run's model folder is damaged: restore it "
                        f"or run the recipe again")
    problems = weights_folder_problems(str(model_dir), model_dir)
    if problems:
        raise UserError(problems)
    return meta


def damaged_model(model_dir: Path, error: Exception) -> UserError:
    """The error for a model folder its plugins could not load (a missing or unparsable file)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return UserError(f"{model_dir}: the run's model cannot be loaded ({text}); its files or weights are missing "
                     f"or damaged: restore the folder or run the recipe again")


def resolve_run_dir(path: str | Path) -> Path:
    """The ``model/`` directory of a finished run (or the model directory itself).

    Raises:
        UserError: ``path`` holds no finished run.
    """
    path = Path(path)
    for candidate in (path / "model", path):
        if (candidate / MODEL_META).is_file():
            if candidate != path and not (path / "summary.json").is_file():
                # The model is written before the baselines and the report: a run stopped there is not finished.
                raise UserError(f"{path}: the run did not finish (its model is saved but it has no summary.json: it "
                                f"stopped before its baselines and report were done); `tl run RECIPE --resume` "
                                f"finishes it")
            return candidate
    raise UserError(
        f"{path}: not a finished run (no model/{MODEL_META}); give the output_dir of a completed `tl run`"
    )
