"""One trial of a sweep: an ordinary run whose epochs are reported to the study.

Kept apart from the sweep's loop so a Ray worker imports only this, and so the
local and Ray backends run a trial through the same function.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._callbacks import EpochEnd
from ._errors import UserError

__all__ = ["TrialOutcome", "TrialSpec", "run_trial"]

Reporter = Callable[[int, float, int], bool]  # (trial number, metric, epoch) -> prune?


@dataclass
class TrialSpec:
    """What a worker needs to run one trial: plain data, so it crosses process boundaries."""

    number: int
    recipe: dict[str, Any]  # the complete trial recipe (output_dir is the trial's run directory)
    values: dict[str, Any]  # the searched keys' values
    metric: str
    resume: bool = False  # an interrupted trial: continue from its checkpoint


@dataclass
class TrialOutcome:
    number: int
    status: str  # complete | pruned | failed
    value: float | None
    seconds: float
    epochs: list[float] = field(default_factory=list)  # the metric after each epoch this session
    error: str | None = None
    started: float = 0.0  # wall-clock start and end (time.time()), to show trials running side by side
    ended: float = 0.0


class _Pruned(Exception):
    """Raised from the epoch callback: the study's pruner stopped the trial."""


def run_trial(spec: TrialSpec, report: Reporter, echo: Callable[[str], None] | None = None) -> TrialOutcome:
    """Run the trial's recipe, reporting ``spec.metric`` after every epoch; pruned trials stop at once."""
    from ._pipeline import finetune

    started, wall = time.perf_counter(), time.time()
    seen: list[float] = []

    def on_epoch(event: EpochEnd) -> None:
        if spec.metric not in event.eval:
            raise UserError(f"sweep.metric: {spec.metric!r} is not a metric of this run; choose one of "
                            f"{', '.join(sorted(event.eval))}")
        value = float(event.eval[spec.metric])
        seen.append(value)
        if echo and not event.replayed:
            echo(f"  trial {spec.number:03d} epoch {event.epoch}/{event.epochs}: {spec.metric} {value:.4f}")
        if report(spec.number, value, event.epoch):
            raise _Pruned

    def outcome(status: str, value: float | None, error: str | None = None) -> TrialOutcome:
        return TrialOutcome(spec.number, status, value, time.perf_counter() - started, seen, error, wall, time.time())

    try:
        result = finetune(spec.recipe, resume=spec.resume, quiet=True, callbacks=[on_epoch])
    except _Pruned:
        return outcome("pruned", seen[-1])
    except UserError as e:
        return outcome("failed", None, " ".join(e.problems))
    if spec.metric not in result.metrics:
        raise UserError(f"sweep.metric: {spec.metric!r} is not a metric of this run; choose one of "
                        f"{', '.join(sorted(result.metrics))}")
    return outcome("complete", float(result.metrics[spec.metric]))


def run_launched_trial(spec: TrialSpec, report: Reporter, processes: int, gpus: float,
                       echo: Callable[[str], None] | None = None) -> TrialOutcome:
    """Run the trial on ``processes`` processes through ``accelerate launch`` (several GPUs for one trial).

    The processes write ``metrics.jsonl`` as any run does; each new evaluation row is reported to the
    study, and the verdict goes back to the processes, which wait for it at the epoch's end
    (:mod:`tl_toolkit._sweep_worker`): a pruned trial stops after exactly the epoch the pruner saw, and
    its checkpoint stays for ``--resume``.
    """
    import json
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile

    import yaml

    from ._sweep_worker import ERROR_PREFIX, write_verdict

    started, wall = time.perf_counter(), time.time()
    run_dir = Path(spec.recipe["output_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe_file = run_dir.parent / f"{run_dir.name}.trial.yaml"
    recipe_file.write_text(yaml.safe_dump(spec.recipe, sort_keys=False), encoding="utf-8")
    verdicts = run_dir.parent / f"{run_dir.name}.verdicts"
    shutil.rmtree(verdicts, ignore_errors=True)  # a resumed trial hears its epochs again
    verdicts.mkdir()
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
               "--num_machines", "1", "--dynamo_backend", "no"]
    command += ["--multi_gpu"] if processes > 1 else []
    command += ["-m", "tl_toolkit._sweep_worker", str(recipe_file), str(verdicts), str(os.getpid()),
                *(["--resume"] if spec.resume else [])]
    env = dict(os.environ)
    if not gpus:
        env["ACCELERATE_USE_CPU"] = "1"  # processes on the CPU (gloo), as the README's two-process example
    # A file, not a pipe: a full pipe would stall the trial. Closed below, or with the object on an error.
    errlog = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errlog, start_new_session=True)
    seen: list[float] = []
    reported: set[int] = set()
    pruned = False
    metrics = run_dir / "metrics.jsonl"

    def outcome(status: str, value: float | None, error: str | None = None) -> TrialOutcome:
        return TrialOutcome(spec.number, status, value, time.perf_counter() - started, seen, error, wall, time.time())

    def stop(error: UserError) -> UserError:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        return error

    while not pruned:
        finished = proc.poll() is not None
        text = metrics.read_text(encoding="utf-8") if metrics.is_file() else ""
        complete_lines = text.split("\n")[:-1]  # the last line may be half written
        for row in map(json.loads, (r for r in complete_lines if '"kind": "eval"' in r)):
            if row["epoch"] in reported:
                continue
            reported.add(row["epoch"])
            if spec.metric not in row["eval"]:
                raise stop(UserError(f"sweep.metric: {spec.metric!r} is not a metric of this run; choose one of "
                                     f"{', '.join(sorted(row['eval']))}"))
            seen.append(float(row["eval"][spec.metric]))
            if echo:
                echo(f"  trial {spec.number:03d} epoch {row['epoch']}: {spec.metric} {seen[-1]:.4f}")
            pruned = report(spec.number, seen[-1], int(row["epoch"]))
            write_verdict(verdicts, int(row["epoch"]), pruned)
            if pruned:
                break
        if finished:
            break
        time.sleep(0.2)
    proc.wait()
    errlog.seek(0)
    stderr = errlog.read()
    errlog.close()
    shutil.rmtree(verdicts, ignore_errors=True)
    if pruned:
        return outcome("pruned", seen[-1])
    errors = [ln.split(ERROR_PREFIX, 1)[1] for ln in stderr.splitlines() if ERROR_PREFIX in ln]
    if errors:  # a user error, one line each (from every process: keep each once)
        return outcome("failed", None, " ".join(dict.fromkeys(errors)))
    if proc.returncode != 0:
        raise RuntimeError(f"trial {spec.number:03d}: accelerate launch exited {proc.returncode}:\n{stderr[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    return outcome("complete", float(summary["eval"][spec.metric]))


def trial_dir(sweep_dir: Path, number: int) -> Path:
    return sweep_dir / "trials" / f"{number:03d}"
