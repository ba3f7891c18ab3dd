"""Issue 15's claims that must be true: a closed stdout, adapters cut off from the loss, a merge that did not happen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, tiny_text_recipe

from tl_toolkit import UserError, finetune
from tl_toolkit._cli import main


@pytest.mark.parametrize("argv", [["list"], ["list", "--json"], ["--help"]])
def test_a_closed_stdout_ends_the_command_quietly(argv: list[str]) -> None:
    """`tl list | head -2`: the reader goes away; tl ends with 0 and says nothing about it."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before tl writes a byte
    proc = subprocess.run([sys.executable, "-m", "tl_toolkit", *argv], stdout=write, stderr=subprocess.PIPE,
                          text=True, cwd=ROOT, timeout=120)
    os.close(write)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def _digits_lora(out: Path) -> dict:
    return {
        "name": "zero-grad", "output_dir": str(out), "seed": 0,
        "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False, "options": {"augment": False}},
        "data": {"format": "digits", "train": "train", "eval": "test", "image_size": 32,
                 "max_train_samples": 16, "max_eval_samples": 16},
        "strategy": {"plugin": "lora"},
        "train": {"epochs": 1, "batch_size": 4, "lr": 1e-3},
    }


def test_lora_on_a_random_timm_resnet_is_reported_as_training_only_the_head(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """timm starts each residual block's last BatchNorm weight at zero: from random weights every adapter sits
    before a zero and gets exactly zero gradient; the run says so instead of passing for LoRA."""
    finetune(_digits_lora(tmp_path / "run"))
    err = capsys.readouterr().err
    [warning] = [line for line in err.splitlines() if "exactly zero gradient" in line]
    assert "strategy 'lora'" in warning and "lora_" in warning and "backbone.pretrained" in warning
    # A quiet run prints nothing: the same sentence comes as a Python warning, which a caller can filter.
    with pytest.warns(UserWarning) as caught:
        finetune(_digits_lora(tmp_path / "quiet"), quiet=True)
    assert [str(w.message) for w in caught if "zero gradient" in str(w.message)] == [warning]
    assert capsys.readouterr().err == ""


def test_a_run_whose_tensors_all_learn_says_nothing_and_merge_lora_without_adapters_claims_no_merge(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tiny_text_recipe("full", tmp_path / "run", tiny_bert_dir, epochs=1)
    recipe["strategy"] = {"plugin": "lora"}
    finetune(recipe)  # LoRA's A matrices get zero gradient at the first step only: no warning
    assert "zero gradient" not in capsys.readouterr().err
    recipe["strategy"], recipe["output_dir"] = {"plugin": "full"}, str(tmp_path / "full")
    finetune(recipe)
    assert "zero gradient" not in capsys.readouterr().err

    code = main(["export", str(tmp_path / "full"), "--format", "hf", "--merge-lora", "--output", str(tmp_path / "x")])
    out = capsys.readouterr().out
    assert code == 0
    assert "LoRA merged" not in out and "no LoRA adapters to merge" in out
    assert json.loads((tmp_path / "x" / "export.json").read_text())["merged_lora"] is False
    code = main(["export", str(tmp_path / "run"), "--format", "hf", "--merge-lora", "--output", str(tmp_path / "y")])
    assert code == 0 and "LoRA merged" in capsys.readouterr().out
    assert json.loads((tmp_path / "y" / "export.json").read_text())["merged_lora"] is True


def test_a_model_whose_eval_loss_is_not_a_number_stops_the_run(tmp_path: Path) -> None:
    """Finite training losses, a diverged model: the run stops in one sentence instead of writing NaN as JSON."""
    recipe = _digits_lora(tmp_path / "run")
    # One step: its loss is computed before the update that ruins the weights.
    recipe["strategy"], recipe["train"] = {"plugin": "full"}, {"epochs": 1, "batch_size": 16, "lr": 1e12}
    with pytest.raises(UserError, match=r"the eval loss is nan after epoch 1: the model diverged; .* Lower train.lr "
                                        r"\(now 1e\+12\)"):
        finetune(recipe, quiet=True)
    assert not (tmp_path / "run").exists()  # stopped before its first checkpoint: nothing to resume, nothing left
