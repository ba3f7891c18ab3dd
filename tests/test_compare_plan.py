"""tl compare (strategies side by side, transfer gain over scratch) and tl plan (cost without training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, run_tl, text_overrides

from tl_toolkit._compare import compare
from tl_toolkit._plan import format_plan, plan
from tl_toolkit._validate import validate

RECIPE = {"name": "cmp", "backbone": {"plugin": "bert", "model": "-"}, "data": {"format": "csv"},
          "train": {"epochs": 1, "batch_size": 16, "lr": 3e-3}}


def test_compare_writes_every_strategy_and_the_gain_over_scratch(tiny_bert_dir: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TL_TOOLKIT_CACHE", str(tmp_path / "cache"))
    recipe = validate(RECIPE, text_overrides(tiny_bert_dir, tmp_path / "run", n_train=48, n_eval=32))
    rows = compare(recipe, ["head-only", "full"], tmp_path / "cmp", quiet=True)
    assert [r.strategy for r in rows] == ["head-only", "full", "scratch"]  # scratch added for the gain
    report = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    scratch = json.loads((tmp_path / "cmp" / "scratch" / "summary.json").read_text())
    assert scratch["strategy"] == "full"
    for row in report["strategies"]:
        summary = json.loads((Path(row["output_dir"]) / "summary.json").read_text())
        assert row["accuracy"] == summary["eval"]["accuracy"]
        assert row["trainable_params"] == summary["trainable_params"]
        assert row["gain_accuracy"] == pytest.approx(summary["eval"]["accuracy"] - scratch["eval"]["accuracy"])
        assert row["peak_memory_mib"] >= 0
    by_name = {r["strategy"]: r for r in report["strategies"]}
    assert by_name["head-only"]["trainable_params"] < by_name["full"]["trainable_params"]
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert all(f"| {name} |" in md for name in by_name) and "transfer gain" in md
    assert (tmp_path / "cmp" / "comparison.png").stat().st_size > 1000


def test_compare_rejects_an_unknown_strategy_with_exit_2(tmp_path: Path) -> None:
    result = run_tl("compare", ROOT / "recipes" / "quickstart.yaml", "--strategies", "full,lorra",
                    f"output_dir={tmp_path}")
    assert result.returncode == 2
    assert "unknown strategy 'lorra'. Did you mean 'lora'?" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "compare").exists()


def test_plan_counts_parameters_measures_steps_and_sees_the_cache(tiny_bert_dir: Path, tmp_path: Path) -> None:
    recipe = validate({**RECIPE, "strategy": {"plugin": "head-only"}},
                      text_overrides(tiny_bert_dir, tmp_path / "run", n_train=48, n_eval=32))
    figures = plan(recipe, steps=2)
    config = json.loads((tiny_bert_dir / "config.json").read_text())
    assert figures["trainable_params"] == config["hidden_size"] * 2 + 2  # the head: 2 labels
    assert figures["total_params"] > 100 * figures["trainable_params"]
    assert figures["feature_cache"] == "applies"
    assert figures["measured_steps"] == 3 and figures["seconds_per_epoch"] > 0
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written
    text = format_plan(figures)
    assert f"{figures['trainable_params']:,} of {figures['total_params']:,} train" in text
    assert f"model {tiny_bert_dir}: local directory" in text

    full = plan(validate(recipe.model_dump(mode="json"), ["strategy.plugin=full"]), steps=1)
    assert full["trainable_params"] == full["total_params"]
    assert full["feature_cache"] == "does not apply: strategy 'full' trains the backbone"
