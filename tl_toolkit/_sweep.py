"""``tl sweep`` and ``sweep()``: an Optuna search over any recipe keys, each trial an ordinary run.

The study lives in ``<output_dir>/sweep/study.db`` (SQLite: embedded, nothing
to start); each trial is a run directory under ``sweep/trials/NNN/``. Optuna
does the sampling and pruning; this module keeps the study honest across
crashes: ``--resume`` finishes the trials a killed sweep left running (from
their checkpoints) before it asks for new ones, and stops at exactly
``sweep.trials`` finished or pruned trials. ``--backend ray`` runs the same
loop with trials as Ray tasks (:mod:`tl_toolkit._sweep_ray`).

Every trial trains with the recipe's seed, so trials differ only in the values
searched (a paired comparison); Optuna's sampler is seeded from it too.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ._checkpoint import write_atomic
from ._errors import UserError
from ._recipe import Recipe
from ._sweep_config import SweepConfig, SweepResources
from ._sweep_report import write_leaderboard, write_plots
from ._sweep_space import base_recipe, trial_recipe
from ._sweep_study import StudyBook
from ._sweep_trial import TrialOutcome, TrialSpec, run_launched_trial, run_trial, trial_dir
from ._validate import validate

__all__ = ["SweepResult", "sweep"]


@dataclass
class SweepResult:
    """What :func:`sweep` returns."""

    sweep_dir: Path  # <output_dir>/sweep
    best_value: float | None  # the best complete trial's metric
    best_values: dict[str, Any]  # its searched values
    best_recipe: Path | None  # best.yaml: `tl run` it to reproduce the best trial
    rows: list[dict[str, Any]]  # the leaderboard, in trial order


class Book(Protocol):
    """The study, in this process or behind a Ray actor."""

    def __call__(self, method: str, *args: Any) -> Any: ...


class Pool(Protocol):
    """Where trials run: one at a time here, or several on Ray."""

    capacity: int

    def submit(self, spec: TrialSpec) -> None: ...

    def wait(self) -> TrialOutcome: ...

    def close(self) -> None: ...


class _LocalPool:
    capacity = 1

    def __init__(self, book: Book, resources: SweepResources, echo: Callable[[str], None]) -> None:
        self._book, self._resources, self._echo = book, resources, echo
        self._queue: list[TrialSpec] = []

    def submit(self, spec: TrialSpec) -> None:
        self._queue.append(spec)

    def wait(self) -> TrialOutcome:
        spec = self._queue.pop(0)
        report = lambda n, v, e: bool(self._book("report", n, v, e))  # noqa: E731
        if self._resources.launched > 1:
            return run_launched_trial(spec, report, self._resources.launched, self._resources.gpu, self._echo)
        return run_trial(spec, report, self._echo)

    def close(self) -> None:
        pass


def sweep(
    recipe: str | Path | dict[str, Any] | Recipe,
    overrides: list[str] | None = None,
    *,
    trials: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    backend: str = "local",
    parallel: int = 1,
    quiet: bool = False,
) -> SweepResult:
    """Search ``recipe.sweep.space`` with Optuna, as ``tl sweep`` does.

    Args:
        recipe: a recipe file, mapping or :class:`Recipe` with a ``sweep:`` section.
        overrides: ``["train.epochs=2", ...]`` applied to every trial (and ``sweep.*`` keys).
        trials: finished-or-pruned trials to end with (default ``sweep.trials``).
        resume: continue the study in ``<output_dir>/sweep``.
        overwrite: delete that study and its trials first.
        backend: ``local`` (trials one after another here) or ``ray``.
        parallel: trials at once (``ray`` only).
        quiet: print nothing.

    Returns:
        The leaderboard and the best trial.

    Raises:
        RecipeError: the recipe or its search space does not validate.
        UserError: an existing sweep without --resume/--overwrite, a bad flag, ray not installed.
    """
    if resume and overwrite:
        raise UserError("--resume and --overwrite: choose one; --resume continues the sweep in output_dir, "
                        "--overwrite replaces it")
    recipe = validate(recipe, overrides)
    cfg = recipe.sweep
    if not cfg.space:
        raise UserError("sweep.space: nothing to search; add dotted recipe keys, e.g. "
                        "train.lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}")
    total = trials if trials is not None else cfg.trials
    if total < 1:
        raise UserError(f"--trials: must be at least 1, got {total}")
    if backend not in ("local", "ray"):
        raise UserError(f"--backend: {backend!r} is not a backend; choose local or ray")
    if parallel < 1 or (parallel > 1 and backend == "local"):
        raise UserError(f"--parallel: {parallel} trials at once needs --backend ray (local runs one at a time)"
                        if parallel > 1 else f"--parallel: must be at least 1, got {parallel}")
    echo: Callable[[str], None] = (lambda _: None) if quiet else (lambda s: print(s, file=sys.stderr, flush=True))

    sweep_dir = recipe.output_path / "sweep"
    previous = _prepare(sweep_dir, recipe, resume, overwrite)
    try:
        result = _search(sweep_dir, recipe, cfg, total, backend, parallel, echo)
    except BaseException as e:
        if previous is not None:  # the new sweep did not finish: the one --overwrite replaced comes back
            shutil.rmtree(sweep_dir, ignore_errors=True)
            previous.rename(sweep_dir)
            e.add_note(f"the previous sweep in {sweep_dir} is back as it was")
        raise
    if previous is not None:
        shutil.rmtree(previous)
    return result


def _search(sweep_dir: Path, recipe: Recipe, cfg: SweepConfig, total: int, backend: str, parallel: int,
            echo: Callable[[str], None]) -> SweepResult:
    """Run the study in ``sweep_dir`` until ``total`` trials are finished or pruned, then write its report."""
    base = base_recipe(recipe)
    epochs = max([recipe.train.epochs] + [int(p.high or 0) for k, p in cfg.space.items() if k == "train.epochs"])
    args = (str(sweep_dir / "study.db"), recipe.name, cfg.model_dump(mode="json"), base, recipe.seed, epochs)

    book: Book
    pool: Pool
    if backend == "ray":
        from ._sweep_ray import ray_backend

        book, pool = ray_backend(args, parallel, cfg.resources, echo)
    else:
        local = StudyBook(*args)
        book = lambda method, *a: getattr(local, method)(*a)  # noqa: E731 - the local twin of an actor call
        pool = _LocalPool(book, cfg.resources, echo)
    try:
        _loop(book, pool, sweep_dir, base, cfg.metric, total, echo)
        rows = book("rows")
        importances = book("importances")
    finally:
        pool.close()
    return _finish(sweep_dir, recipe, rows, importances, echo)


def _prepare(sweep_dir: Path, recipe: Recipe, resume: bool, overwrite: bool) -> Path | None:
    """Make ``sweep_dir`` ready; under --overwrite, where the sweep it replaces waits until the new one finishes."""
    existing = (sweep_dir / "study.db").is_file()
    previous = None
    if existing and overwrite:  # the recipe and its space have passed every check by now
        previous = sweep_dir.with_name(".previous-sweep")
        if previous.exists():
            shutil.rmtree(previous)
        sweep_dir.rename(previous)
    elif existing and not resume:
        raise UserError(f"output_dir: {str(sweep_dir)!r} already holds a sweep; pass --resume to continue it, "
                        f"--overwrite to start over (resume=True or overwrite=True from Python), or set "
                        f"output_dir=<another directory>")
    elif existing and (sweep_dir / "sweep.yaml").is_file():
        before = (sweep_dir / "sweep.yaml").read_text(encoding="utf-8")
        if before != recipe.to_yaml():
            raise UserError(f"{sweep_dir / 'sweep.yaml'}: the sweep there was started from another recipe or "
                            f"overrides; resume with the same ones, or pass --overwrite to start over")
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"output_dir: cannot create {str(sweep_dir)!r} ({e.strerror}); choose a writable "
                        f"output_dir") from None
    write_atomic(sweep_dir / "sweep.yaml", recipe.to_yaml())
    return previous


def _loop(book: Book, pool: Pool, sweep_dir: Path, base: dict[str, Any], metric: str, total: int,
          echo: Callable[[str], None]) -> None:
    started = time.perf_counter()
    counts = book("counts")
    done = counts["complete"] + counts["pruned"]
    failures = 0
    queue = [(n, v, True) for n, v in book("interrupted")]
    if queue:
        echo(f"sweep: resuming {len(queue)} interrupted trial(s): {', '.join(f'{n:03d}' for n, _, _ in queue)}")
    running = 0
    errors: set[str] = set()
    while done + running < total or running:
        while running < pool.capacity and (queue or done + running < total):
            number, values, resume = queue.pop(0) if queue else (*book("ask"), False)
            run_dir = trial_dir(sweep_dir, number)
            data = trial_recipe(base, values)
            data.update(name=f"{base['name']}-trial-{number:03d}", output_dir=str(run_dir))
            shown = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
            echo(f"trial {number:03d}: {'resuming ' if resume else ''}{shown}")
            pool.submit(TrialSpec(number, data, values, metric, resume=resume))
            running += 1
        outcome = pool.wait()
        running -= 1
        attrs: dict[str, Any] = {"seconds": round(outcome.seconds, 2), "started": outcome.started,
                                 "ended": outcome.ended, "run_dir": str(trial_dir(sweep_dir, outcome.number))}
        if outcome.error:
            attrs["error"] = outcome.error
        book("tell", outcome.number, outcome.status, outcome.value, attrs)
        rows = book("rows")
        write_leaderboard(sweep_dir, rows, metric, _direction(book))
        if outcome.status == "failed":
            failures += 1
            echo(f"trial {outcome.number:03d}: failed: {outcome.error}")
            errors.add(outcome.error or "")
            if failures >= max(3, total // 2):
                # One error for every value tried is the recipe's own; different ones point at the space.
                fix = ("fix that and run the sweep again" if len(errors) == 1
                       else "narrow sweep.space to values that run")
                raise UserError(f"sweep: {failures} trials failed, the last with: {outcome.error}; {fix}")
        else:
            done += 1
            value = f"{metric} {outcome.value:.4f}" if outcome.value is not None else ""
            echo(f"trial {outcome.number:03d}: {outcome.status} {value} ({outcome.seconds:.0f}s)")
        best = _best(rows, _direction(book))
        best_text = f", best {metric} {best['value']:.4f} (trial {best['trial']:03d})" if best else ""
        pruned = sum(r["status"] == "pruned" for r in rows)
        echo(f"sweep: {done}/{total} trials done ({pruned} pruned){best_text}, "
             f"{_clock(time.perf_counter() - started)} elapsed")


def _direction(book: Book) -> str:
    return str(book("direction"))


def _best(rows: Sequence[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    complete = [r for r in rows if r["status"] == "complete" and r["value"] is not None]
    if not complete:
        return None
    pick = max if direction == "maximize" else min
    return pick(complete, key=lambda r: r["value"])


def _finish(sweep_dir: Path, recipe: Recipe, rows: list[dict[str, Any]], importances: dict[str, float],
            echo: Callable[[str], None]) -> SweepResult:
    cfg = recipe.sweep
    write_leaderboard(sweep_dir, rows, cfg.metric, cfg.direction)
    write_plots(sweep_dir, rows, importances, cfg.metric, frozenset(k for k, p in cfg.space.items() if p.log))
    best = _best(rows, cfg.direction)
    best_path = None
    if best:
        import yaml

        trial_yaml = Path(best["run_dir"]) / "recipe.yaml"
        data = yaml.safe_load(trial_yaml.read_text(encoding="utf-8"))
        data.update(name=f"{recipe.name}-best", output_dir=str(sweep_dir / "best"))
        best_path = sweep_dir / "best.yaml"
        header = (f"# The best trial of the sweep in {sweep_dir} (trial {best['trial']:03d}, "
                  f"{cfg.metric} {best['value']:.6f}).\n# `tl run {best_path}` trains it again with the same "
                  f"seed and gives the same metric.\n")
        write_atomic(best_path, header + yaml.safe_dump(data, sort_keys=False))
        echo(f"sweep: best trial {best['trial']:03d}, {cfg.metric} {best['value']:.4f}: "
             f"{', '.join(f'{k}={_short(v)}' for k, v in best['values'].items())} -> {best_path}")
    return SweepResult(sweep_dir, best["value"] if best else None, best["values"] if best else {}, best_path, rows)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
