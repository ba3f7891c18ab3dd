"""Kill a run with SIGKILL at random moments, resume it each time, and compare with an uninterrupted run.

For each strategy: one uninterrupted ``tl run`` gives the reference metrics
and its number of optimizer steps; then the same recipe is started in a fresh
output directory and killed ``--kills`` times, each time restarted with
``--resume``. The moments are drawn with ``--seed``: a random step of the run
(always past what the killed run already logged, so it moves on, and spread
over what is left), and there a random phase: during training (a random delay after that step is
logged), during evaluation (just after an epoch's last step is logged), or
while a checkpoint is being written (as soon as a hidden ``.*.tmp`` folder
appears). For ``head-only`` (whose frozen features are cached,
``train.feature_cache: auto``) the first kill lands while the feature cache is
being computed or written (a hidden ``.*.tmp`` file in the run's own
``$TL_TOOLKIT_CACHE``), and every kill before the cache is complete does too. Moments follow the run's progress, not the clock, so a loaded
machine changes nothing. After the last kill, ``--resume`` runs to the end, and
the final eval metrics and every logged loss must equal the reference exactly
(CPU, same seed). Prints, per kill, the phase it hit and the checkpoints left;
exits 1 on any mismatch.

Usage: python bench/kill_resume.py [--strategies full lora head-only] [--kills 10] [--seed 0] [--workdir DIR]
           [--json FILE]
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

RECIPE = {
    "name": "kill-resume",
    "seed": 5,
    # No image augmentation: see docs/recipes.md, "Checkpoints and --resume", on mid-epoch exactness.
    "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False,
                 "options": {"augment": False}},
    "data": {"format": "digits", "train": "train", "eval": "test", "image_size": 32,
             "max_train_samples": 48, "max_eval_samples": 96},
    "train": {"epochs": 3, "batch_size": 4, "lr": 1.0e-3, "log_every_steps": 1,
              "checkpoint_every_steps": 5, "keep_checkpoints": 2},
}


def _start(recipe: Path, out: Path, resume: bool) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "tl_toolkit", "run", str(recipe), f"output_dir={out}", "--quiet"]
    env = {**os.environ, "TL_TOOLKIT_CACHE": str(_cache(out))}  # each run its own cache: the killed one writes it
    return subprocess.Popen(args + (["--resume"] if resume else []), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True, env=env)


def _cache(out: Path) -> Path:
    return out.with_name(out.name + "-features")


def _cache_done(out: Path) -> bool:
    return any(_cache(out).glob("[!.]*.safetensors"))


def _phase(out: Path) -> str:
    """What the killed run was doing: writing the feature cache or a checkpoint, evaluating, or training."""
    if any(_cache(out).glob(".*.tmp")):
        return "cache-write"
    if any((out / "checkpoints").glob(".*.tmp")):
        return "save"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()] if (
        out / "metrics.jsonl").is_file() else []
    if rows and rows[-1]["kind"] == "train" and float(rows[-1]["epoch"]).is_integer():
        return "eval"  # the epoch's last step is logged, its eval row not yet
    return "train" if rows else "startup"


def _logged_step(out: Path) -> int:
    rows = _rows(out) if (out / "metrics.jsonl").is_file() else []
    return max((r["step"] for r in rows), default=0)


def _epoch_end_logged(out: Path) -> bool:
    rows = _rows(out) if (out / "metrics.jsonl").is_file() else []
    return bool(rows) and rows[-1]["kind"] == "train" and float(rows[-1]["epoch"]).is_integer()


def _wait(proc: subprocess.Popen[bytes], ready: Callable[[], bool]) -> bool:
    """Poll until ``ready()``; False when the run ended first."""
    while proc.poll() is None:
        try:
            if ready():
                return True
        except (OSError, ValueError):  # a file being rewritten under us
            pass
        time.sleep(0.005)
    return False


def _kill_at(proc: subprocess.Popen[bytes], out: Path, step: int, phase: str, rng: random.Random) -> str:
    """Kill ``proc`` in ``phase`` once the run has logged ``step``."""
    ckpts = out / "checkpoints"
    if phase == "cache":  # computing the features, or writing them (the hidden .tmp file)
        _wait(proc, lambda: any(_cache(out).glob(".*.tmp")) or _cache_done(out))
        if proc.poll() is not None:
            return "finished"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return _phase(out) if not _cache_done(out) else "after-cache"
    reached = _wait(proc, lambda: _logged_step(out) >= step)
    if reached and phase == "eval":
        reached = _wait(proc, lambda: _epoch_end_logged(out))
        time.sleep(rng.uniform(0.0, 0.3))
    elif reached and phase == "save":
        reached = _wait(proc, lambda: any(ckpts.glob(".*.tmp")))
        time.sleep(rng.uniform(0.0, 0.05))
    elif reached:
        time.sleep(rng.uniform(0.0, 0.5))
    if proc.poll() is not None:
        return "finished"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return _phase(out)


def _newest_step(out: Path) -> int:
    states = [json.loads((p / "trainer_state.json").read_text()) for p in (out / "checkpoints").glob("[!.]*")
              if (p / "trainer_state.json").is_file()] if (out / "checkpoints").is_dir() else []
    return max((s["step"] for s in states), default=0)


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def run_strategy(strategy: str, kills: int, rng: random.Random, work: Path, record: dict | None = None) -> bool:
    recipe = work / f"{strategy}.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "strategy": {"plugin": strategy}}))
    landed: list[dict] = []
    straight, killed = work / f"{strategy}-straight", work / f"{strategy}-killed"
    t0 = time.monotonic()
    proc = _start(recipe, straight, resume=False)
    _, err = proc.communicate()
    duration = time.monotonic() - t0
    if proc.returncode != 0:
        print(err.decode()[-2000:])
        return False
    reference = json.loads((straight / "summary.json").read_text())["eval"]
    print(f"{strategy}: uninterrupted run {duration:.1f}s, eval {reference}", flush=True)

    total = _logged_step(straight)
    epoch_ends = [r["step"] for r in _rows(straight) if r["kind"] == "eval"]
    for i in range(kills):
        # Past what the killed run already logged, so the stale log of the last run cannot trigger the kill,
        # and spread over what is left so the ten kills reach the end of the run.
        done = max(_newest_step(killed), _logged_step(killed))
        phase = ["train", "eval", "save"][rng.randrange(3)]
        if strategy == "head-only" and not _cache_done(killed):
            phase = "cache"
        step = min(done + rng.randint(1, max(1, 2 * (total - done) // (kills - i))), total)
        if phase == "eval":
            step = next((end for end in epoch_ends if end >= step), total)
        proc = _start(recipe, killed, resume=i > 0)
        hit = _kill_at(proc, killed, step, phase, rng)
        ckpts = sorted(p.name for p in (killed / "checkpoints").glob("[!.]*")) if (killed / "checkpoints").is_dir() else []
        print(f"  kill {i + 1:2d}: aimed at {phase} after step {step:2d} -> hit {hit:11s} checkpoints left {ckpts}",
              flush=True)
        landed.append({"aimed": phase, "step": step, "hit": hit, "checkpoints_left": ckpts})
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
    if record is not None:
        record[strategy] = {"kills": landed, "reference_eval": a, "resumed_eval": b, "identical": same,
                            "uninterrupted_seconds": round(duration, 1),
                            "feature_cache": json.loads((killed / "summary.json").read_text()).get("feature_cache")}
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=["full", "lora", "head-only"])
    parser.add_argument("--json", type=Path, default=None, help="also write the kills and metrics here")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tl-kill-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    record: dict = {"kills_per_strategy": args.kills, "seed": args.seed}
    ok = [run_strategy(s, args.kills, rng, work, record) for s in args.strategies]
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
