"""Internal errors: the traceback on standard error and in a log file that can be attached to a bug report.

A user error never comes here (it exits 2 with its one-line message); anything
else is a bug in tl_toolkit or a plugin, and the full story is worth keeping
after the terminal scrolled away.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

__all__ = ["log_dir", "report_internal_error"]


def log_dir() -> Path:
    """Where crash logs go: ``$TL_LOG_DIR``, or ``tl_toolkit-logs`` in the system temporary directory."""
    return Path(os.environ.get("TL_LOG_DIR") or Path(tempfile.gettempdir()) / "tl_toolkit-logs")


def report_internal_error(prog: str, argv: Sequence[str]) -> Path | None:
    """Print the exception being handled with its traceback and write both to a new log file.

    Returns the log file, or None when it could not be written (the traceback is printed anyway).
    """
    from . import __version__

    exc = sys.exc_info()[1]
    trace = traceback.format_exc()
    header = (
        f"{prog} {' '.join(argv)}\n"
        f"tl_toolkit {__version__}, Python {platform.python_version()}, {platform.platform()}\n"
        f"cwd {os.getcwd()}\n\n"
    )
    path: Path | None = log_dir() / f"tl-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    try:
        log_dir().mkdir(parents=True, exist_ok=True)
        Path(str(path)).write_text(header + trace, encoding="utf-8")
    except OSError:
        path = None
    sys.stderr.write(trace)
    where = f"the full log is in {path}" if path else "the log file could not be written"
    print(f"{prog}: internal error: {type(exc).__name__}: {exc}; {where}. Please report it with that log.",
          file=sys.stderr)
    return path
