"""tl sweep: the space checked before any trial, the study, pruning, kill -9 and --resume, best.yaml, Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import run_tl, tiny_text_recipe

from tl_toolkit import finetune, sweep
from tl_toolkit._sweep_study import StudyBook
from tl_toolkit._sweep_trial import TrialSpec, run_trial

SPACE = {
    "train.lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
    "strategy.plugin": {"type": "categorical", "choices": ["head-only", "lora"]},
    "strategy.options.r": {"type": "int", "low": 2, "high": 8, "log": True, "when": {"strategy.plugin": "lora"}},
}


def _recipe(tmp_path: Path, model: Path, trials: int = 3, epochs: int = 2, **sweep_cfg: object) -> Path:
    data = tiny_text_recipe("sw", tmp_path / "out", model, epochs=epochs)
    data["data"]["max_train_samples"], data["data"]["max_eval_samples"] = 32, 32
    data["sweep"] = {"metric": "accuracy", "trials": trials, "pruner": "median", "space": SPACE, **sweep_cfg}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _study(sweep_dir: Path):
    import optuna

    return optuna.load_study(study_name="sw", storage=f"sqlite:///{sweep_dir / 'study.db'}")


def test_validate_names_every_bad_key_of_the_space_before_any_trial(tiny_bert_dir: Path, tmp_path: Path) -> None:
    path = _recipe(tmp_path, tiny_bert_dir)
    data = yaml.safe_load(path.read_text())
    data["sweep"]["space"].update({
        "train.lrr": {"type": "float", "low": 0.1, "high": 1},
        "train.batch_size": {"type": "int", "low": 0, "high": 8},
        "strategy.options.r": {"type": "int", "low": 0, "high": 8, "when": {"strategy.plugin": "lora"}},
        "strategy.plugin": {"type": "categorical", "choices": ["head-only", "lorra"]},
    })
    path.write_text(yaml.safe_dump(data))
    # A space key given on the command line is one dotted key under sweep.space.
    result = run_tl("validate", path, "sweep.space.train.epochs={type: int, low: 3, high: 1}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    by_key = {k: [ln for ln in lines if f"sweep.space.{k}" in ln] for k in
              ("train.lrr", "train.batch_size", "strategy.options.r", "strategy.plugin", "train.epochs")}
    assert all(by_key.values()), result.stderr
    def said(key: str, text: str) -> bool:
        return any(text in line for line in by_key[key])

    assert said("train.lrr", "'train.lrr' is not a recipe key: Did you mean 'lr'?")
    assert said("train.batch_size", "the value 0 would make an invalid recipe: train.batch_size")
    assert said("strategy.options.r", "the value 0 would make an invalid recipe")
    assert said("strategy.options.r", "when strategy.plugin is 'lora', but that is not among strategy.plugin's "
                                      "choices ['head-only', 'lorra']; the key would never be searched")
    assert said("strategy.plugin", "the value 'lorra' would make an invalid recipe")
    assert said("strategy.plugin", "Did you mean 'lora'?")
    assert said("train.epochs", "the range is empty: low 3.0 is above high 1.0")
    assert not (tmp_path / "out").exists()


def test_sweep_writes_study_leaderboard_plots_and_a_best_yaml_that_reproduces(tiny_bert_dir: Path,
                                                                             tmp_path: Path) -> None:
    result = sweep(_recipe(tmp_path, tiny_bert_dir, trials=3, pruner="none"), quiet=True)
    sweep_dir = tmp_path / "out" / "sweep"
    trials = _study(sweep_dir).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    board = json.loads((sweep_dir / "leaderboard.json").read_text())
    assert [(r["trial"], r["value"]) for r in board["trials"]] == [(t.number, t.value) for t in trials]
    for row, trial in zip(board["trials"], trials, strict=True):
        summary = json.loads((Path(row["run_dir"]) / "summary.json").read_text())
        assert summary["eval"]["accuracy"] == trial.value
        run = yaml.safe_load((Path(row["run_dir"]) / "recipe.yaml").read_text())
        assert run["train"]["lr"] == pytest.approx(trial.params["train.lr"])
        assert run["strategy"]["plugin"] == trial.params["strategy.plugin"]
        # A key searched only for lora is set exactly in the lora trials.
        assert ("strategy.options.r" in trial.params) == (run["strategy"]["plugin"] == "lora")
        if run["strategy"]["plugin"] == "lora":
            assert run["strategy"]["options"]["r"] == trial.params["strategy.options.r"]
    best = max(trials, key=lambda t: t.value)
    assert result.best_value == best.value
    md = (sweep_dir / "leaderboard.md").read_text()
    assert md.splitlines()[4].startswith(f"| 1 | {best.number:03d} | complete | {best.value:.4f} |")
    for png in ("history.png", "params.png"):
        assert (sweep_dir / png).is_file()
    rerun = finetune(sweep_dir / "best.yaml", quiet=True)
    assert rerun.metrics["accuracy"] == best.value
    assert rerun.output_dir == sweep_dir / "best"


def test_a_pruned_trial_stops_after_the_epoch_the_pruner_names(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from tl_toolkit._sweep_space import base_recipe, trial_recipe
    from tl_toolkit._validate import validate

    recipe = validate(_recipe(tmp_path, tiny_bert_dir, epochs=3))
    sweep_dir = tmp_path / "out" / "sweep"
    sweep_dir.mkdir(parents=True)
    book = StudyBook(str(sweep_dir / "study.db"), "sw", recipe.sweep.model_dump(), base_recipe(recipe), 0, 3)
    number, values = book.ask()
    data = trial_recipe(base_recipe(recipe), values) | {"output_dir": str(tmp_path / "t0")}
    calls: list[tuple[int, float, int]] = []

    def report(n: int, value: float, epoch: int) -> bool:
        calls.append((n, value, epoch))
        return book.report(n, value, epoch) or epoch == 2  # this pruner stops every trial after epoch 2

    outcome = run_trial(TrialSpec(number, data, values, "accuracy"), report)
    assert outcome.status == "pruned" and [c[2] for c in calls] == [1, 2]
    rows = [json.loads(line) for line in (tmp_path / "t0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["kind"] == "eval"] == [1, 2]  # epoch 3 never ran
    assert not (tmp_path / "t0" / "summary.json").exists()
    book.tell(number, "pruned", None, {})
    (trial,) = _study(sweep_dir).trials
    assert trial.state.name == "PRUNED" and sorted(trial.intermediate_values) == [1, 2]


def test_a_trial_on_two_launched_processes_reports_each_epoch_and_stops_when_pruned(tiny_bert_dir: Path,
                                                                                  tmp_path: Path) -> None:
    from tl_toolkit._sweep_trial import run_launched_trial

    data = tiny_text_recipe("launched", tmp_path / "t", tiny_bert_dir, epochs=3)
    data["data"]["max_train_samples"] = 16
    calls: list[int] = []

    def report(n: int, value: float, epoch: int) -> bool:
        calls.append(epoch)
        return epoch == 2

    outcome = run_launched_trial(TrialSpec(7, data, {}, "accuracy"), report, processes=2, gpus=0)
    assert outcome.status == "pruned" and calls == [1, 2] and len(outcome.epochs) == 2
    assert (tmp_path / "t" / "checkpoints" / "epoch-2" / "random_states_1.pkl").is_file()  # two processes ran
    assert not (tmp_path / "t" / "summary.json").exists()


def test_kill_during_a_trial_then_resume_ends_with_exactly_the_trials_asked(tiny_bert_dir: Path,
                                                                           tmp_path: Path) -> None:
    path = _recipe(tmp_path, tiny_bert_dir, trials=3, epochs=3, pruner="none")
    sweep_dir = tmp_path / "out" / "sweep"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tl_toolkit", "sweep", str(path),
                             "train.checkpoint_every_steps=1"], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    # Kill inside trial 001, after its first epoch's checkpoint.
    while not list((sweep_dir / "trials" / "001" / "checkpoints").glob("*")) and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    states = [t.state.name for t in _study(sweep_dir).trials]
    assert states[0] == "COMPLETE" and states[1] == "RUNNING" and len(states) == 2

    result = run_tl("sweep", path, "train.checkpoint_every_steps=1", "--resume")
    assert result.returncode == 0, result.stderr
    assert "resuming 1 interrupted trial(s): 001" in result.stderr
    trials = _study(sweep_dir).trials
    assert [t.number for t in trials] == [0, 1, 2] and {t.state.name for t in trials} == {"COMPLETE"}
    for number in ("000", "001", "002"):  # each trial trained every epoch once: none ran twice
        rows = [json.loads(x) for x in (sweep_dir / "trials" / number / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows if r["kind"] == "eval"] == [1, 2, 3]
    again = run_tl("sweep", path, "train.checkpoint_every_steps=1", "--resume")
    assert again.returncode == 0 and len(_study(sweep_dir).trials) == 3  # a finished study asks for nothing


def test_sweep_refuses_an_existing_study_without_resume_or_overwrite(tiny_bert_dir: Path, tmp_path: Path) -> None:
    path = _recipe(tmp_path, tiny_bert_dir, trials=1, epochs=1)
    (tmp_path / "out" / "sweep").mkdir(parents=True)
    (tmp_path / "out" / "sweep" / "study.db").write_bytes(b"a study")
    result = run_tl("sweep", path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "already holds a sweep; pass --resume to continue it, --overwrite to start over" in result.stderr
    assert (tmp_path / "out" / "sweep" / "study.db").read_bytes() == b"a study"
    result = run_tl("sweep", path, "--parallel", "2")
    assert result.returncode == 2 and "--parallel: 2 trials at once needs --backend ray" in result.stderr
    result = run_tl("validate", path, "sweep.metric=acc")  # a metric the task never reports, before any trial
    assert result.returncode == 2 and "sweep.metric: task 'classification' reports no metric 'acc'." in result.stderr


def test_an_overwrite_whose_trials_all_fail_puts_the_previous_sweep_back(
        tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tl_toolkit import UserError, _sweep
    from tl_toolkit._sweep_trial import TrialOutcome

    path = _recipe(tmp_path, tiny_bert_dir, trials=3, epochs=1)
    previous = tmp_path / "out" / "sweep"
    previous.mkdir(parents=True)
    (previous / "study.db").write_bytes(b"a finished study")
    (previous / "best.yaml").write_text("its best recipe")
    monkeypatch.setattr(_sweep, "run_trial", lambda spec, report, echo: TrialOutcome(
        spec.number, "failed", None, 0.0, error="data: the same problem for every value"))
    with pytest.raises(UserError, match="3 trials failed, the last with: data: the same problem for every value; "
                                        "fix that and run the sweep again"):
        sweep(path, overwrite=True, quiet=True)
    assert sorted(p.name for p in previous.iterdir()) == ["best.yaml", "study.db"]
    assert (previous / "study.db").read_bytes() == b"a finished study"
    assert not (tmp_path / "out" / ".previous-sweep").exists()


def test_ray_backend_runs_two_trials_at_once_and_the_leaderboard_is_the_study(tiny_bert_dir: Path,
                                                                            tmp_path: Path) -> None:
    path = _recipe(tmp_path, tiny_bert_dir, trials=2, epochs=2, pruner="none")
    result = run_tl("sweep", path, "--backend", "ray", "--parallel", "2")
    assert result.returncode == 0, result.stderr
    sweep_dir = tmp_path / "out" / "sweep"
    board = json.loads((sweep_dir / "leaderboard.json").read_text())["trials"]
    trials = _study(sweep_dir).trials
    assert [(r["trial"], r["status"], r["value"]) for r in board] == [
        (t.number, "complete", t.value) for t in trials]
    (a, b) = board
    print(f"trial {a['trial']}: {a['started']:.2f}-{a['ended']:.2f}; trial {b['trial']}: {b['started']:.2f}-{b['ended']:.2f}")
    assert a["started"] < b["ended"] and b["started"] < a["ended"]  # the two trials ran side by side
