"""The one object that touches the Optuna study of a sweep.

Locally it lives in the ``tl sweep`` process; on Ray it is an actor, so that
one process reads and writes ``study.db`` (SQLite) however many trials run at
once, and workers on other machines need no access to the file. Everything it
takes and returns is plain data, so the same methods serve both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._sweep_config import SearchParam, SweepConfig
from ._sweep_space import sample

__all__ = ["StudyBook"]

_STATES = {"complete": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}


class StudyBook:
    """Ask, report and tell for the trials of one study stored in ``db``."""

    def __init__(self, db: str, name: str, config: dict[str, Any], base: dict[str, Any], seed: int,
                 max_epochs: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.config = SweepConfig.model_validate(config)
        self.base = base
        sampler = (optuna.samplers.TPESampler(seed=seed) if self.config.sampler == "tpe"
                   else optuna.samplers.RandomSampler(seed=seed))
        pruner: optuna.pruners.BasePruner
        if self.config.pruner == "median":
            # A quarter of the budget runs unpruned first, so the median means something.
            pruner = optuna.pruners.MedianPruner(n_startup_trials=max(2, self.config.trials // 4))
        elif self.config.pruner == "hyperband":
            pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 1))
        else:
            pruner = optuna.pruners.NopPruner()
        self.study = optuna.create_study(
            study_name=name, storage=f"sqlite:///{Path(db).resolve()}", sampler=sampler, pruner=pruner,
            direction=self.config.direction, load_if_exists=True,
        )
        self._open: dict[int, optuna.Trial] = {}

    # -- the trial lifecycle ----------------------------------------------

    def direction(self) -> str:
        return self.config.direction

    def counts(self) -> dict[str, int]:
        """How many trials the study holds, by state (complete, pruned, failed, running)."""
        counts = {"complete": 0, "pruned": 0, "failed": 0, "running": 0}
        names = {v: k for k, v in _STATES.items()} | {"RUNNING": "running", "WAITING": "running"}
        for t in self.study.get_trials(deepcopy=False):
            counts[names[t.state.name]] += 1
        return counts

    def interrupted(self) -> list[tuple[int, dict[str, Any]]]:
        """Trials a killed sweep left running: (number, values), to resume from their checkpoints."""
        import optuna

        out = []
        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            # The Trial handle of a trial another process asked for: Optuna's ask() builds it the same way.
            self._open[t.number] = optuna.trial.Trial(self.study, t._trial_id)
            out.append((t.number, json.loads(t.user_attrs.get("values", "{}"))))
        return out

    def ask(self) -> tuple[int, dict[str, Any]]:
        """A new trial: its number and its values of the space's keys."""
        trial = self.study.ask()
        space = {k: SearchParam.model_validate(v.model_dump()) for k, v in self.config.space.items()}
        values = sample(trial, space, self.base)
        trial.set_user_attr("values", json.dumps(values))  # what the trial ran, conditions applied
        self._open[trial.number] = trial
        return trial.number, values

    def report(self, number: int, value: float, epoch: int) -> bool:
        """Record a trial's metric after ``epoch``; True when the pruner stops the trial."""
        import warnings

        trial = self._open[number]
        with warnings.catch_warnings():  # a resumed trial reports its last epoch again: Optuna keeps the first
            warnings.simplefilter("ignore")
            trial.report(value, epoch)
        return bool(trial.should_prune())

    def tell(self, number: int, status: str, value: float | None, attrs: dict[str, Any]) -> None:
        """Close a trial: ``status`` is complete, pruned or failed."""
        import optuna

        trial = self._open.pop(number)
        for key, attr in attrs.items():
            trial.set_user_attr(key, attr)
        state = optuna.trial.TrialState[_STATES[status]]
        self.study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)

    # -- what the leaderboard shows -----------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        """Every trial as the leaderboard lists it, in trial order."""
        rows = []
        for t in self.study.get_trials(deepcopy=False):
            steps = sorted(t.intermediate_values)
            rows.append({
                "trial": t.number,
                "status": {v: k for k, v in _STATES.items()}.get(t.state.name, t.state.name.lower()),
                "values": json.loads(t.user_attrs.get("values", "{}")),
                "value": t.value if t.value is not None else (t.intermediate_values[steps[-1]] if steps else None),
                "epochs": len(steps),
                "seconds": t.user_attrs.get("seconds"),
                "started": t.user_attrs.get("started"),
                "ended": t.user_attrs.get("ended"),
                "run_dir": t.user_attrs.get("run_dir"),
                "error": t.user_attrs.get("error"),
            })
        return rows

    def importances(self) -> dict[str, float]:
        """Optuna's parameter importances over the complete trials (empty when they cannot be computed)."""
        import optuna

        complete = [t for t in self.study.get_trials(deepcopy=False)
                    if t.state == optuna.trial.TrialState.COMPLETE]
        if len(complete) < 2:
            return {}
        try:
            return dict(optuna.importance.get_param_importances(self.study))
        except (RuntimeError, ValueError):  # e.g. every complete trial has the same values
            return {}
