"""One process of a sweep trial that runs on several processes (``accelerate launch -m tl_toolkit._sweep_worker``).

The trial is an ordinary run; what this adds is the pruner's verdict after
every epoch. The sweep process reads each epoch's evaluation from the run's
``metrics.jsonl``, asks the study, and writes ``epoch-<n>`` (``go`` or
``stop``) into the verdict folder; every process of the trial waits at the
epoch's end for that file, so all of them stop after the same epoch, and a
pruned trial trains not one batch more than the pruner saw (its checkpoint
stays for ``--resume``).

If the sweep process itself is gone (killed), the processes stop at the epoch's
end instead of waiting forever; ``tl sweep --resume`` continues the trial.

Usage: ``python -m tl_toolkit._sweep_worker RECIPE VERDICT_DIR SWEEP_PID [--resume]``.
Exit codes: 0 finished or stopped, 2 a user error (``tl run: error: ...`` lines on stderr). torchrun
reports any failure of a process as exit code 1, so the sweep reads the error lines, not the code.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ._callbacks import EpochEnd
from ._errors import UserError

__all__ = ["ERROR_PREFIX", "main", "write_verdict"]

ERROR_PREFIX = "tl run: error: "


class _Stopped(Exception):
    """The sweep's pruner stopped the trial after this epoch."""


def write_verdict(folder: Path, epoch: int, stop: bool) -> None:
    """The sweep's side: tell the trial's processes whether to go on after ``epoch`` (written atomically)."""
    tmp = folder / f".epoch-{epoch}.tmp"
    tmp.write_text("stop" if stop else "go", encoding="utf-8")
    tmp.replace(folder / f"epoch-{epoch}")


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _await_verdict(folder: Path, sweep_pid: int, poll: float = 0.05):
    def on_epoch(event: EpochEnd) -> None:
        path = folder / f"epoch-{event.epoch}"
        while not path.is_file():
            if not _alive(sweep_pid):
                raise _Stopped
            time.sleep(poll)
        if path.read_text(encoding="utf-8") == "stop":
            raise _Stopped

    return on_epoch


def main(argv: list[str]) -> int:
    from ._pipeline import finetune
    from ._quiet import quiet_libraries

    recipe, folder, sweep_pid, resume = argv[0], Path(argv[1]), int(argv[2]), "--resume" in argv[3:]
    quiet_libraries(True)
    try:
        finetune(recipe, resume=resume, quiet=True, callbacks=[_await_verdict(folder, sweep_pid)])
    except _Stopped:
        return 0
    except UserError as e:
        for problem in e.problems:
            print(f"{ERROR_PREFIX}{problem}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
