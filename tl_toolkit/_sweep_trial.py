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

    The processes write ``metrics.jsonl`` as any run does; each new evaluation row is reported to the study
    as it appears, and a pruned trial's processes are stopped (its checkpoint stays for ``--resume``).
    """
    import json
    import os
    import signal
    import subprocess
    import sys

    import yaml

    started, wall = time.perf_counter(), time.time()
    run_dir = Path(spec.recipe["output_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe_file = run_dir.parent / f"{run_dir.name}.trial.yaml"
    recipe_file.write_text(yaml.safe_dump(spec.recipe, sort_keys=False), encoding="utf-8")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
               "--num_machines", "1", "--dynamo_backend", "no"]
    command += ["--multi_gpu"] if processes > 1 else []
    command += ["-m", "tl_toolkit", "run", str(recipe_file), "-q", *(["--resume"] if spec.resume else [])]
    env = dict(os.environ)
    if not gpus:
        env["ACCELERATE_USE_CPU"] = "1"  # processes on the CPU (gloo), as the README's two-process example
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    seen: list[float] = []
    reported: set[int] = set()
    metrics = run_dir / "metrics.jsonl"

    def outcome(status: str, value: float | None, error: str | None = None) -> TrialOutcome:
        return TrialOutcome(spec.number, status, value, time.perf_counter() - started, seen, error, wall, time.time())

    while True:
        finished = proc.poll() is not None
        rows = metrics.read_text(encoding="utf-8").splitlines() if metrics.is_file() else []
        for row in map(json.loads, (r for r in rows if '"kind": "eval"' in r)):
            if row["epoch"] in reported:
                continue  # a resumed run writes its earlier epochs again
            reported.add(row["epoch"])
            if spec.metric not in row["eval"]:
                os.killpg(proc.pid, signal.SIGTERM)
                raise UserError(f"sweep.metric: {spec.metric!r} is not a metric of this run; choose one of "
                                f"{', '.join(sorted(row['eval']))}")
            seen.append(float(row["eval"][spec.metric]))
            if echo:
                echo(f"  trial {spec.number:03d} epoch {row['epoch']}: {spec.metric} {seen[-1]:.4f}")
            if report(spec.number, seen[-1], int(row["epoch"])):
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
                return outcome("pruned", seen[-1])
        if finished:
            break
        time.sleep(0.5)
    stderr = proc.stderr.read() if proc.stderr else ""
    if proc.returncode == 2:  # a user error, one line each
        return outcome("failed", None, " ".join(ln.split("error: ", 1)[-1] for ln in stderr.splitlines()
                                                if "error: " in ln))
    if proc.returncode != 0:
        raise RuntimeError(f"trial {spec.number:03d}: accelerate launch exited {proc.returncode}:\n{stderr[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    return outcome("complete", float(summary["eval"][spec.metric]))


def trial_dir(sweep_dir: Path, number: int) -> Path:
    return sweep_dir / "trials" / f"{number:03d}"
