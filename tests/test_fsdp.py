"""FSDP: a model sharded over two processes saves as one that the plain libraries load with the same logits.

accelerate turns FSDP on only for GPUs, so ``tests/fsdp_worker.py`` shards the
run's model itself with FSDP2's ``fully_shard`` (two torchrun processes, gloo
on CPU), takes a training step, gathers the full state dict as accelerate does
under FSDP2 and saves it through the pipeline's unsharded copy. What cannot run
here: accelerate's own FSDP wrapping inside ``tl run`` (GPU only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, tiny_text_recipe

from tl_toolkit import finetune
from tl_toolkit.testing import weights_must_fit


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_fsdp2_sharded_model_saves_and_reloads_in_the_plain_library(strategy: str, tiny_bert_dir: Path,
                                                                    tmp_path: Path) -> None:
    recipe = tiny_text_recipe("fsdp", tmp_path / "run", tiny_bert_dir)
    recipe["strategy"] = {"plugin": strategy}
    recipe["data"]["max_train_samples"] = 16
    finetune(recipe, quiet=True)
    out = tmp_path / "sharded"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(ROOT / "tests" / "fsdp_worker.py"), str(tmp_path / "run"), str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sharded = json.loads((out / "sharded_logits.json").read_text())

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = out / "model"
    base_dir = model_dir / "base" if strategy == "lora" else model_dir
    with weights_must_fit("plain transformers (+ peft) on the sharded run's save"):
        model = AutoModelForSequenceClassification.from_pretrained(base_dir)
        if strategy == "lora":
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, model_dir)
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
    with torch.no_grad():
        logits = model.eval()(**tokenizer(sharded["texts"], padding=True, return_tensors="pt")).logits
    torch.testing.assert_close(logits, torch.tensor(sharded["logits"]), atol=1e-5, rtol=1e-5)
    trained = json.loads((tmp_path / "run" / "model" / "tl_toolkit.json").read_text())
    assert json.loads((model_dir / "tl_toolkit.json").read_text())["label_names"] == trained["label_names"]
