"""Errors that reach the user.

A :class:`UserError` is something the user can fix (a recipe key, a file, a
plugin name): the CLI prints its problems one per line and exits 2, with no
traceback. Anything else is an internal error: exit 1 with a traceback.
"""

from __future__ import annotations

import difflib
import errno
import os
from collections.abc import Iterable, Sequence

__all__ = ["DataError", "PluginError", "RecipeError", "UserError", "os_error_message", "suggest"]


class UserError(Exception):
    """A problem in the user's input, carrying one or more messages.

    Each message names what is wrong (a recipe key, a file, a plugin) and how
    to fix it.
    """

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class RecipeError(UserError):
    """A recipe that does not validate; ``problems`` lists every issue found."""


class PluginError(UserError):
    """A plugin that is unknown, failed to load, or broke its contract."""


class DataError(UserError):
    """A bad example found while reading the data, possibly in a DataLoader worker process.

    torch re-raises a worker's exception in the main process as ``DataError(text)``
    with the worker's traceback as the text. The original message is that
    traceback's last line, and it is all the user needs, so it is kept alone.
    """

    def __init__(self, problems: str | Sequence[str]) -> None:
        if isinstance(problems, str) and problems.startswith("Caught ") and "Original Traceback" in problems:
            last = problems.rstrip().splitlines()[-1]  # "tl_toolkit._errors.DataError: <message>"
            problems = last.split(": ", 1)[-1]
        super().__init__(problems)


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the nearest choice, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


_OS_CAUSES = {
    errno.EACCES: ("permission denied", "give yourself access (chmod/chown) or use another path"),
    errno.EPERM: ("operation not permitted", "give yourself access (chmod/chown) or use another path"),
    errno.ENOENT: ("No such file or directory", "check the path"),
    errno.EISDIR: ("it is a folder, not a file", "give a file"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the path"),
    errno.EROFS: ("the file system is read-only", "use a path on a writable disk"),
    errno.ENOSPC: ("no space left on the device", "free some space or use another disk"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space or use another disk"),
    errno.EEXIST: ("it already exists", "remove it or use another path"),
    errno.ENAMETOOLONG: ("the name is too long", "use a shorter path"),
}


#: How libraries that write files themselves word a full disk (safetensors' Rust I/O, torch.save's zip writer).
_DISK_FULL = ("No space left on device", "os error 28", "StorageFull", "file write failed")


def storage_error(error: BaseException) -> OSError | None:
    """A full disk or exceeded quota behind ``error``, as an OSError; None for anything else.

    An OSError from a write carries the errno but often no file name; safetensors and
    torch raise their own types with the operating system's words in the text.
    """
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return error
    if not isinstance(error, OSError) and any(words in str(error) for words in _DISK_FULL):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return None


def os_error_message(error: OSError, what: str | None = None, path: object = None) -> str:
    """One sentence for an operating-system error on a user's path: what, the path, the cause, the fix.

    ``what`` names the recipe key or option (``output_dir``, ``--output``); ``path``
    defaults to the file the error names.
    """
    target = path if path is not None else (error.filename or "")
    cause, fix = _OS_CAUSES.get(error.errno or -1, (error.strerror or type(error).__name__, "check the path"))
    prefix = f"{what}: " if what else ""
    if not target:  # a write that failed as a whole (a full disk): no path to name
        return f"{prefix}writing the output failed: {cause}; {fix}"
    return f"{prefix}{str(target)!r}: {cause}; {fix}"
