"""kill -9 at moments chosen from a run's own progress, then ``tl run --resume``: the result is the same.

The fast version of ``bench/kill_resume.py`` (which kills 10 times each under
``full``, ``lora`` and cached ``head-only``): a cached ``head-only`` run is
killed while its feature cache is computed or written, while a checkpoint is
written, and while it evaluates; after the last resume its final metrics and
every logged loss equal those of an uninterrupted run exactly.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from forked import start_tl, tl_in_child

RECIPE = {
    "name": "chaos", "seed": 3,
    "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False, "options": {"augment": False}},
    "data": {"format": "digits", "train": "train", "eval": "test", "image_size": 32,
             "max_train_samples": 24, "max_eval_samples": 64},
    "strategy": {"plugin": "head-only"},
    "train": {"epochs": 3, "batch_size": 4, "lr": 1.0e-2, "log_every_steps": 1, "checkpoint_every_steps": 2,
              "keep_checkpoints": 2},
}


def _rows(out: Path) -> list[dict]:
    path = out / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def _epoch_end_logged(out: Path) -> bool:
    rows = _rows(out)
    return bool(rows) and rows[-1]["kind"] == "train" and float(rows[-1]["epoch"]).is_integer()


def _kill_when(pid: int, ready: Callable[[], bool], timeout: float = 120) -> bool:
    """SIGKILL the child as soon as ``ready()``; False when it ended first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if ready():
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return True
        except (OSError, ValueError):  # a file rewritten under us
            pass
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
        time.sleep(0.001)
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("the run neither reached the moment nor ended")


def test_kill_9_during_cache_write_checkpoint_write_and_eval_then_resume_gives_the_same_run(tmp_path: Path) -> None:
    recipe = tmp_path / "chaos.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    cache_a, cache_b = tmp_path / "cache-a", tmp_path / "cache-b"

    code, log = tl_in_child(["run", str(recipe), f"output_dir={straight}", "-q"], tmp_path, tmp_path / "a.log",
                            env={"TL_TOOLKIT_CACHE": str(cache_a)})
    assert code == 0, log

    def start(resume: bool) -> int:
        return start_tl(["run", str(recipe), f"output_dir={killed}", "-q", *(["--resume"] if resume else [])],
                        tmp_path, tmp_path / "b.log", env={"TL_TOOLKIT_CACHE": str(cache_b)})

    moments: list[tuple[str, Callable[[], bool]]] = [
        ("feature cache", lambda: any(cache_b.glob(".*.tmp")) or any(cache_b.glob("*.safetensors"))),
        ("checkpoint write", lambda: any((killed / "checkpoints").glob(".*.tmp"))),
        ("evaluation", lambda: _epoch_end_logged(killed) and len(_rows(killed)) > 6),
    ]
    landed = []
    for i, (name, ready) in enumerate(moments):
        assert _kill_when(start(resume=i > 0), ready), f"the run ended before the {name} kill"
        landed.append(name)
    code, log = tl_in_child(["run", str(recipe), f"output_dir={killed}", "-q", "--resume"], tmp_path,
                            tmp_path / "c.log", env={"TL_TOOLKIT_CACHE": str(cache_b)})
    assert code == 0, log
    assert landed == [name for name, _ in moments]
    a = json.loads((straight / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    assert a["feature_cache"]["used"] and b["feature_cache"]["used"]  # both runs trained the head on cached features
    assert b["eval"] == a["eval"]
    assert [(r["step"], r.get("train_loss")) for r in _rows(killed)] == [
        (r["step"], r.get("train_loss")) for r in _rows(straight)]
    assert not list(cache_b.glob(".*.tmp")) or list(cache_b.glob("*.safetensors"))  # a half write never counts
