"""Run ``tl``'s ``main()`` in a child forked from the test process, which already holds the imports.

A forked child starts in milliseconds where ``python -m tl_toolkit`` takes
seconds to import torch and the libraries, so a table of a hundred command
lines, or a run killed and resumed again and again, stays fast. The child
computes on one thread (the parent's thread pools do not survive a fork).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["start_tl", "tl_in_child"]


def start_tl(argv: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None,
             before: Callable[[], None] | None = None) -> int:
    """Fork a child running ``main(argv)`` with stdout and stderr in ``log``; returns its pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: never returns into pytest
        os.setsid()  # its own group, so a kill reaches any process it starts
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the child's own streams
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.chdir(cwd)
        os.environ.update(env or {})
        import torch

        torch.set_num_threads(1)
        if before is not None:
            before()
        from tl_toolkit._cli import main

        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own errors
            code = e.code if isinstance(e.code, int) else 2
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def tl_in_child(argv: list[str], cwd: Path, log: Path, *, env: dict[str, str] | None = None,
                before: Callable[[], None] | None = None, timeout: float = 300) -> tuple[int, str]:
    """Run ``main(argv)`` in a forked child to its end; its exit code and its stdout+stderr."""
    pid = start_tl(argv, cwd, log, env, before)
    previous = signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
    signal.alarm(int(timeout))
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return os.waitstatus_to_exitcode(status), log.read_text(errors="replace")
