"""Two processes on one machine: the same recipe through torch.distributed (gloo on CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import ROOT


def test_two_processes_with_gradient_accumulation(tmp_path: Path) -> None:
    recipe = tmp_path / "mp.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "mp",
        "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False, "options": {"hflip": 0.0}},
        "data": {"format": "digits", "train": "train", "eval": "test", "image_size": 32,
                 "max_train_samples": 96, "max_eval_samples": 50},
        "train": {"epochs": 2, "batch_size": 16, "lr": 1.0e-3, "grad_accum_steps": 2},
    }))
    out = tmp_path / "run"
    # accelerate reads torchrun's environment; ACCELERATE_USE_CPU makes it use gloo instead of looking for GPUs.
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "tl_toolkit", "run",
         str(recipe), f"output_dir={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes" in proc.stdout
    assert proc.stdout.count("mp: accuracy") == 1  # only the main process reports
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    # 96 examples / 2 processes / batch 16 = 3 batches per process; accumulating 2 -> 2 optimizer steps an epoch.
    assert [r["step"] for r in evals] == [2, 4]
    summary = json.loads((out / "summary.json").read_text())
    # gather_for_metrics counts each of the 50 eval examples once, not the padding of uneven shards.
    assert round(summary["eval"]["accuracy"] * 50, 6).is_integer()
    assert sorted(p.name for p in (out / "checkpoints" / "epoch-2").glob("random_states_*.pkl")) == [
        "random_states_0.pkl", "random_states_1.pkl"]
