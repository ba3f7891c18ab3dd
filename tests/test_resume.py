"""Checkpoints and ``--resume``: an interrupted run finishes as if it had never stopped."""

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
from conftest import ROOT, run_tl

RECIPE = {
    "name": "resume",
    "seed": 3,
    # No augmentation: a mid-epoch checkpoint is exact only when preparing examples draws no random numbers.
    "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False, "options": {"augment": False}},
    "data": {"format": "digits", "train": "train", "eval": "test", "image_size": 32,
             "max_train_samples": 96, "max_eval_samples": 48},
    # 6 batches an epoch; a checkpoint every 4 steps lands inside epochs 1 and 3.
    "train": {"epochs": 3, "batch_size": 16, "lr": 1.0e-3, "log_every_steps": 2, "checkpoint_every_steps": 4},
}


def _recipe(tmp_path: Path, strategy: str) -> Path:
    path = tmp_path / f"{strategy}.yaml"
    path.write_text(yaml.safe_dump({**RECIPE, "strategy": {"plugin": strategy}}))
    return path


def _kill_after_first_checkpoint(recipe: Path, out: Path, first: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tl_toolkit", "run", str(recipe), f"output_dir={out}", "--quiet"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not (out / "checkpoints" / first / "trainer_state.json").exists():
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_resume_after_kill_matches_an_uninterrupted_run(strategy: str, tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, strategy)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run_tl("run", recipe, f"output_dir={straight}", "--quiet").returncode == 0

    _kill_after_first_checkpoint(recipe, resumed, "step-4")
    assert not (resumed / "summary.json").exists()
    proc = run_tl("run", recipe, f"output_dir={resumed}")
    assert proc.returncode == 2 and "--resume" in proc.stderr  # an unfinished run is never silently restarted
    proc = run_tl("run", recipe, f"output_dir={resumed}", "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "Resuming from" in proc.stdout + proc.stderr and "batch" in proc.stdout + proc.stderr  # inside an epoch

    a = json.loads((straight / "summary.json").read_text())
    b = json.loads((resumed / "summary.json").read_text())
    assert b["eval"] == pytest.approx(a["eval"], rel=1e-5)
    rows_a = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b]
    # The same batches in the same order from the same states: every logged loss is identical on CPU.
    assert [r["train_loss"] for r in rows_b] == [r["train_loss"] for r in rows_a]
    assert [r["eval"] for r in rows_b if r["kind"] == "eval"] == [r["eval"] for r in rows_a if r["kind"] == "eval"]


def test_finished_run_is_not_overwritten_without_asking(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, "head-only")
    out = tmp_path / "run"
    assert run_tl("run", recipe, f"output_dir={out}", "train.epochs=1", "--quiet").returncode == 0
    before = (out / "summary.json").read_bytes()
    proc = run_tl("run", recipe, f"output_dir={out}", "train.epochs=1", "--quiet")
    assert proc.returncode == 2
    assert "already holds a finished run" in proc.stderr and "Traceback" not in proc.stderr
    assert (out / "summary.json").read_bytes() == before
    assert len(list((out / "checkpoints").iterdir())) == 1  # keep_checkpoints: 1
    (out / "eval.json").write_text("{}")  # as `tl eval` leaves it: it describes the old model
    proc = run_tl("run", recipe, f"output_dir={out}", "train.epochs=1", "--overwrite", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert not (out / "eval.json").exists()
