"""Replacing a run under ``--overwrite`` without losing it when the new run does not finish.

A run writes into its ``output_dir`` as it trains (checkpoints, ``metrics.jsonl``,
``recipe.yaml``), so the previous run's files cannot stay where they are. They are
moved aside into ``<output_dir>/.previous-run/`` (a rename: the same file system,
nothing copied) once every check that can run before training has passed, and
deleted only when the new run has written its ``summary.json``. A new run that
stops on an error or Ctrl-C is removed and the previous run put back as it was.
A run into an empty folder that stops before its first checkpoint is removed the
same way: it leaves nothing that ``--resume`` could continue.
A process killed outright leaves ``.previous-run/`` behind; the next ``--overwrite``
of that folder keeps it as the last finished run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["PREVIOUS_RUN", "REPLACED", "PreviousRun"]

#: Where a replaced run waits until its replacement finishes.
PREVIOUS_RUN = ".previous-run"

#: What a run writes into its output_dir, and what is derived from its model (exports, WiSE-FT):
#: all of it describes the run that --overwrite replaces. ``compare/`` and ``sweep/`` hold runs of their own.
REPLACED = ("model", "checkpoints", "baselines", "summary.json", "metrics.jsonl", "report.md", "recipe.yaml",
            "learning_curves.png", "eval.json", "confusion_matrix.png", "trackers", "export", "wise_ft")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class PreviousRun:
    """The files of the run in ``out`` that ``--overwrite`` replaces, kept until the new run finishes."""

    def __init__(self, out: Path, replace: bool = True) -> None:
        """``replace``: --overwrite; without it there is no previous run, and an unfinished new one is removed."""
        self.out, self.replace = out, replace
        self.kept = out / PREVIOUS_RUN
        self.active = False  # set aside by this process (the main one): only then restored or discarded
        self.created = False  # the output folder did not exist before this run

    def set_aside(self) -> None:
        """Move the previous run's files into ``.previous-run/`` (a killed replacement's partial files are removed)."""
        self.active, self.created = True, not self.out.exists()
        if not self.replace:
            return
        if self.kept.is_dir() and (self.kept / "summary.json").is_file() and not (self.out / "summary.json").is_file():
            # An earlier --overwrite was killed before it finished: .previous-run is the last finished run.
            for name in REPLACED:
                _remove(self.out / name)
            return
        _remove(self.kept)
        names = [name for name in REPLACED if (self.out / name).exists() or (self.out / name).is_symlink()]
        if not names:
            return
        self.kept.mkdir()
        for name in names:
            (self.out / name).rename(self.kept / name)

    def restore(self) -> bool:
        """Remove what the unfinished new run wrote and put the previous run back; whether there was one."""
        if not self.active:
            return False
        self.active = False
        for name in REPLACED:
            _remove(self.out / name)
        if self.created and not any(self.out.iterdir()):
            self.out.rmdir()
        if not self.replace or not self.kept.is_dir():  # there was none: the folder is left as the checks found it
            return False
        for path in self.kept.iterdir():
            path.rename(self.out / path.name)
        self.kept.rmdir()
        return True

    def discard(self) -> None:
        """The new run finished: the previous one goes."""
        if self.active and self.replace:
            _remove(self.kept)
        self.active = False
