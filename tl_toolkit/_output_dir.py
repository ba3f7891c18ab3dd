"""A run's output folder: what it holds, and what a new run may do with it (refuse, resume, replace).

A folder that holds a run is refused unless ``--resume`` or ``--overwrite`` says what to
do with it; ``--resume`` continues it only with the recipe it was started with.

Replacing a run under ``--overwrite`` must not lose it when the new run does not finish.
A run writes into its ``output_dir`` as it trains (checkpoints, ``metrics.jsonl``,
``recipe.yaml``), so the previous run's files cannot stay where they are. They are
moved aside into ``<output_dir>/.previous-run/`` (a rename: the same file system,
nothing copied) once every check that can run before training has passed, and
deleted only when the new run has written its ``summary.json``. A new run that
stops on an error or Ctrl-C is removed and the previous run put back as it was.
A run into an empty folder that stops before its first checkpoint is removed the
same way: it leaves nothing that ``--resume`` could continue.
A process killed outright leaves ``.previous-run/`` behind: the refusal that follows
names it, the next ``--overwrite`` keeps it as the last finished run, and the
replacement, once finished (by ``--resume`` or ``--overwrite``), removes it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import UserError

if TYPE_CHECKING:
    from ._recipe import Recipe

__all__ = ["PREVIOUS_RUN", "REPLACED", "PreviousRun", "check_output_dir", "check_resumable", "claim_output_dir",
           "finished", "started"]

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


def finished(out: Path) -> bool:
    """Whether ``out`` holds a finished run (its summary is the last file a run writes)."""
    return (out / "summary.json").is_file() and (out / "model").is_dir()


def check_output_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse an output directory that holds a run unless --resume or --overwrite says what to do with it."""
    if overwrite:
        return
    if (out / "summary.json").is_file() and not resume:
        raise UserError(
            f"output_dir: {str(out)!r} already holds a finished run; pass --overwrite to replace it "
            f"(overwrite=True from Python) or set output_dir=<another directory>"
        )
    if started(out) and not resume:
        kept = (out / PREVIOUS_RUN / "summary.json").is_file()  # an --overwrite killed outright left it there
        raise UserError(
            f"output_dir: {str(out)!r} holds an unfinished run"
            + (f" (and, in {PREVIOUS_RUN}/, the finished run it was replacing)" if kept else "")
            + "; pass --resume to continue it, or --overwrite to start over (resume=True or overwrite=True from "
              "Python)"
        )


def check_resumable(out: Path, recipe: Recipe) -> None:
    """--resume continues the run in ``out`` only with the recipe it was started with (more epochs allowed)."""
    import yaml

    from ._checkpoint import resume_changes

    saved = yaml.safe_load((out / "recipe.yaml").read_text(encoding="utf-8")) or {}
    changes = resume_changes(saved, recipe.model_dump(mode="json"))
    if changes:
        raise UserError(f"--resume: the run in {str(out)!r} was started with other settings ({'; '.join(changes[:4])}"
                        f"{'; ...' if len(changes) > 4 else ''}); resume with the settings it was started with "
                        f"(only train.epochs may change), or pass --overwrite to start over")


def started(out: Path) -> bool:
    """Whether ``out`` holds a run that began training (killed before its first checkpoint included).

    A run that stopped before it logged a step (a bad value found by its first batch) left nothing
    worth continuing: its empty ``metrics.jsonl`` does not count, and the next run simply starts.
    """
    log = out / "metrics.jsonl"
    return (out / "checkpoints").is_dir() or (log.is_file() and log.stat().st_size > 0)


def claim_output_dir(out: Path, previous: PreviousRun | None) -> None:
    """Create ``out`` and, with --overwrite, set the previous run's files aside: called only once every check that
    can run before training has passed, so a bad input leaves the previous run (or no folder) as it was."""
    from ._paths import make_output_dir

    if previous is not None:
        previous.set_aside()
    make_output_dir("output_dir", out)
