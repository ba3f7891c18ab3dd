"""Kill a run with SIGKILL at random moments, resume it each time, and compare with an uninterrupted run.

For each strategy: one uninterrupted ``tl run`` gives the reference metrics and
its duration; then the same recipe is started in a fresh output directory and
killed ``--kills`` times at moments drawn (with ``--seed``) across that
duration, each time restarted with ``--resume``; half of the kills wait for a
checkpoint being written (a hidden ``.*.tmp`` folder) so that saving is hit
too. After the last kill, ``--resume`` runs to the end, and the final eval
metrics and every logged loss must equal the reference exactly (CPU, same
seed). Prints, per kill, the phase it hit (train, eval, save) and the newest
checkpoint it resumed from; exits 1 on any mismatch.

Usage: python bench/kill_resume.py [--strategies full lora] [--kills 10] [--seed 0] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

RECIPE = {
    "name": "kill-resume",
    "seed": 5,
    # No image augmentation: see docs/recipes.md, "Checkpoints and --resume", on mid-epoch exactness.
    "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False,
                 "options": {"augment": False}},
    "data": {"format": "digits", "train": "train", "eval": "test", "image_size": 32,
             "max_train_samples": 64, "max_eval_samples": 128},
    "train": {"epochs": 2, "batch_size": 8, "lr": 1.0e-3, "log_every_steps": 1,
              "checkpoint_every_steps": 3, "keep_checkpoints": 2},
}


def _start(recipe: Path, out: Path, resume: bool) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "tl_toolkit", "run", str(recipe), f"output_dir={out}", "--quiet"]
    return subprocess.Popen(args + (["--resume"] if resume else []), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def _phase(out: Path) -> str:
    """What the killed run was doing: writing a checkpoint, evaluating, or training."""
    if any((out / "checkpoints").glob(".*.tmp")):
        return "save"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()] if (
        out / "metrics.jsonl").is_file() else []
    if rows and rows[-1]["kind"] == "train" and float(rows[-1]["epoch"]).is_integer():
        return "eval"  # the epoch's last step is logged, its eval row not yet
    return "train" if rows else "startup"


def _kill_at(proc: subprocess.Popen[bytes], out: Path, delay: float, wait_for_save: bool) -> str:
    """Kill ``proc`` after ``delay`` seconds (then, optionally, as soon as a checkpoint is being written)."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    while wait_for_save and proc.poll() is None and not any((out / "checkpoints").glob(".*.tmp")):
        time.sleep(0.002)
    if proc.poll() is not None:
        return "finished"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return _phase(out)


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def run_strategy(strategy: str, kills: int, rng: random.Random, work: Path) -> bool:
    recipe = work / f"{strategy}.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "strategy": {"plugin": strategy}}))
    straight, killed = work / f"{strategy}-straight", work / f"{strategy}-killed"
    t0 = time.monotonic()
    proc = _start(recipe, straight, resume=False)
    _, err = proc.communicate()
    duration = time.monotonic() - t0
    if proc.returncode != 0:
        print(err.decode()[-2000:])
        return False
    print(f"{strategy}: uninterrupted run {duration:.1f}s, eval {json.loads((straight / 'summary.json').read_text())['eval']}")

    for i in range(kills):
        wait_for_save = i % 2 == 1
        delay = rng.uniform(0.3, 1.0) * duration
        proc = _start(recipe, killed, resume=i > 0)
        phase = _kill_at(proc, killed, delay, wait_for_save)
        ckpts = sorted(p.name for p in (killed / "checkpoints").glob("[!.]*")) if (killed / "checkpoints").is_dir() else []
        print(f"  kill {i + 1:2d}: after {delay:5.1f}s{' + save' if wait_for_save else ''} -> hit {phase:8s} "
              f"checkpoints {ckpts}")
    proc = _start(recipe, killed, resume=True)
    _, err = proc.communicate()
    if proc.returncode != 0:
        print(err.decode()[-2000:])
        return False

    a = json.loads((straight / "summary.json").read_text())["eval"]
    b = json.loads((killed / "summary.json").read_text())["eval"]
    losses_a = [(r["step"], r.get("train_loss")) for r in _rows(straight)]
    losses_b = [(r["step"], r.get("train_loss")) for r in _rows(killed)]
    same = a == b and losses_a == losses_b
    print(f"{strategy}: resumed after {kills} kills, eval {b} -> {'IDENTICAL' if same else 'DIFFERENT'}")
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=["full", "lora"])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tl-kill-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    ok = [run_strategy(s, args.kills, rng, work) for s in args.strategies]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
