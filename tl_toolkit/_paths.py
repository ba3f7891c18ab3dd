"""Checks of the folders a command will write (``output_dir``, ``--output``) before any work starts.

A folder that is a file, lies under a file, sits in a folder the user may not
write, or cannot be created at all would otherwise end a run with an
operating-system traceback after the data and model were loaded. Each is one
sentence naming the key, the path and the cause. A folder written in several
steps (a model, an export) is built as a hidden sibling first (:func:`staged_folder`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._errors import UserError, os_error_message

__all__ = ["make_output_dir", "output_dir_problems", "staged_folder"]


def output_dir_problems(key: str, path: str | Path) -> list[str]:
    """Why ``path`` cannot be used as a folder to write into (empty when it can). Nothing is left behind."""
    path = Path(path).expanduser()
    if path.exists():
        if not path.is_dir():
            return [f"{key}: {str(path)!r} is a file, not a folder; choose another {key} or remove the file"]
        if not os.access(path, os.W_OK | os.X_OK):
            return [f"{key}: folder {str(path)!r} is not writable (permission denied); "
                    f"choose a folder you can write to"]
        return []
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return [f"{key}: cannot create {str(path)!r}: {str(parent)!r} is a file, not a folder; "
                f"choose another {key}"]
    if not os.access(parent, os.W_OK | os.X_OK):
        return [f"{key}: cannot create {str(path)!r}: folder {str(parent)!r} is not writable (permission denied); "
                f"choose a folder you can write to"]
    try:  # the one sure test: create (and remove) a folder where the first missing one would go
        os.rmdir(tempfile.mkdtemp(prefix=".tl-probe-", dir=parent))
    except OSError as e:
        return [f"{key}: {str(path)!r} cannot be created ({os_error_message(e, path=parent)}); "
                f"choose another {key}"]
    return []


def make_output_dir(key: str, path: Path) -> None:
    """``mkdir -p`` with the failure as a :class:`UserError` naming ``key``."""
    problems = output_dir_problems(key, path)
    if problems:
        raise UserError(problems)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{key}: {str(path)!r} cannot be created ({os_error_message(e)})") from None


@contextmanager
def staged_folder(tmp: Path) -> Iterator[Path]:
    """A fresh folder ``tmp`` to fill, removed if the block fails (a full disk, Ctrl-C): nothing half-written stays.

    The caller renames it into place at the end of the block.
    """
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
