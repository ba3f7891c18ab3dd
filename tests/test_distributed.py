"""Two processes on one machine (gloo on CPU) against one process with the same global batch.

``accelerate launch --multi_gpu --num_processes 2`` with ``ACCELERATE_USE_CPU=1``
starts two processes through torchrun on CPU (without ``--multi_gpu``,
accelerate's CPU launcher starts one process, whatever ``--num_processes``
says). The model has no dropout and LayerNorm instead of BatchNorm, so two
processes of batch 4 compute the same updates as one process of batch 8.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SST2

import tl_toolkit


@pytest.fixture
def bert_without_dropout(tiny_bert_dir: Path, tmp_path: Path) -> Path:
    model = tmp_path / "bert"
    shutil.copytree(tiny_bert_dir, model)
    config = json.loads((model / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model / "config.json").write_text(json.dumps(config))
    return model


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(bert_without_dropout: Path, tmp_path: Path) -> None:
    recipe = {
        "name": "mp",
        "seed": 2,
        "backbone": {"plugin": "bert", "model": str(bert_without_dropout)},
        "data": {"format": "csv", "train": str(SST2 / "train.tsv"), "eval": str(SST2 / "dev.tsv"),
                 "text_column": "sentence", "max_train_samples": 48, "max_eval_samples": 50, "max_length": 32},
        # 50 eval examples: 25 a process, the last batch of 8 uneven, padded by accelerate and dropped again.
        # A global batch of 8: 2 processes x 2 examples x 2 accumulated batches, or 1 x 4 x 2.
        "train": {"epochs": 2, "lr": 5.0e-3, "grad_accum_steps": 2, "eval_batch_size": 8, "log_every_steps": 1},
    }
    path = tmp_path / "mp.yaml"
    path.write_text(yaml.safe_dump(recipe))
    two = tmp_path / "two"
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "-m", "tl_toolkit", "run", str(path), f"output_dir={two}", "train.batch_size=2"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes" in proc.stdout
    assert proc.stdout.count("mp: accuracy") == 1  # only the main process reports

    one = tl_toolkit.finetune(path, [f"output_dir={tmp_path / 'one'}", "train.batch_size=4"], quiet=True)
    summary = json.loads((two / "summary.json").read_text())
    print(f"two processes: {summary['eval']}\none process:   {one.metrics}")
    assert summary["eval"] == pytest.approx(one.metrics, abs=1e-3)
    # gather_for_metrics counts each of the 50 eval examples once, not the padding of the uneven shards.
    assert round(summary["eval"]["accuracy"] * 50, 6).is_integer()
    rows_two = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    rows_one = [json.loads(x) for x in (one.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows_two] == [r["step"] for r in rows_one]  # 6 optimizer steps an epoch in both
    # Files come from the main process only: the same files as the one-process run, plus one RNG state a process.
    files = lambda out: sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())  # noqa: E731
    extra = set(files(two)) - set(files(one.output_dir))
    assert extra == {"checkpoints/epoch-2/random_states_1.pkl"}
