"""tl compare (strategies side by side, transfer gain over scratch) and tl plan (cost without training)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ROOT, recorded_figures, run_tl, text_overrides

from tl_toolkit._compare import _plot, compare
from tl_toolkit._plan import format_plan, plan
from tl_toolkit._validate import validate

RECIPE = {"name": "cmp", "backbone": {"plugin": "bert", "model": "-"}, "data": {"format": "csv"},
          "train": {"epochs": 1, "batch_size": 16, "lr": 3e-3}}


def test_compare_writes_every_strategy_and_the_gain_over_scratch(tiny_bert_dir: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TL_TOOLKIT_CACHE", str(tmp_path / "cache"))
    recipe = validate(RECIPE, text_overrides(tiny_bert_dir, tmp_path / "run", n_train=48, n_eval=32))
    with recorded_figures() as figures:
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
    by_name = {r["strategy"]: r for r in report["strategies"]}
    assert by_name["head-only"]["trainable_params"] < by_name["full"]["trainable_params"]
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    for r in rows:
        assert (f"| {r.trainable_params:,} | {r.total_params:,} | {r.train_seconds:.1f} | "
                f"{r.peak_memory_mib:.0f} |") in md
    assert "transfer gain" in md
    panels = figures["comparison.png"].axes
    assert [ax.get_title() for ax in panels] == ["eval accuracy", "transfer gain over scratch (pt)",
                                                 "trainable parameters"]
    strategies = [r.strategy for r in rows]
    expected = [[r.accuracy for r in rows], [100 * (r.gain_accuracy or 0) for r in rows],
                [r.trainable_params for r in rows]]
    for ax, values in zip(panels, expected, strict=True):
        assert [t.get_text() for t in ax.get_xticklabels()] == strategies
        assert [bar.get_height() for bar in ax.patches] == pytest.approx(values)
    assert panels[2].get_yscale() == "log"
    # The tiny runs may tie with scratch; the gain panel is drawn in points whatever the gains are.
    with recorded_figures() as figures:
        _plot(tmp_path / "gains.png", [replace(r, gain_accuracy=g) for r, g in zip(rows, [0.05, -0.0125, None],
                                                                                    strict=True)])
    assert [bar.get_height() for bar in figures["gains.png"].axes[1].patches] == pytest.approx([5.0, -1.25, 0.0])


_PEAK_OF_A_BLOCK = """
import sys, time
import torch
from tl_toolkit._memory import peak_memory

with peak_memory() as peak:
    block = torch.ones(64 * 2**20, dtype=torch.uint8, device=sys.argv[1])  # written, so resident
    time.sleep(0.2)  # the CPU probe samples every 20 ms
    del block
print(peak.device, peak.mib)
"""


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_peak_memory_sees_a_64_mib_block(device: str) -> None:
    """What tl compare reports as peak memory: the CPU's resident set added, or the CUDA allocator's peak.

    Measured in a fresh interpreter: in the test process, memory that earlier tests freed (and the allocator
    keeps, or the system reclaims while the block runs) would hide or offset the block.
    """
    proc = subprocess.run([sys.executable, "-c", _PEAK_OF_A_BLOCK, device], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    measured_on, mib = proc.stdout.split()
    assert measured_on == device
    assert 64 <= float(mib) < 96, mib


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
    assert figures["measured_steps"] == 2 and figures["batches_per_epoch"] == 3  # 48 examples, too few to warm up
    low, high = figures["seconds_per_epoch_range"]
    assert low <= figures["seconds_per_epoch"] <= high
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written
    text = format_plan(figures)
    assert f"{figures['trainable_params']:,} of {figures['total_params']:,} train" in text
    assert f"model {tiny_bert_dir}: local directory" in text

    full = plan(validate(recipe.model_dump(mode="json"), ["strategy.plugin=full"]), steps=1)
    assert full["trainable_params"] == full["total_params"]
    assert full["feature_cache"] == "does not apply: strategy 'full' trains the backbone"


def test_plan_drives_the_engine_step_on_the_batches_the_epoch_draws(tiny_bert_dir: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tl_toolkit._train_step import TrainStep

    shapes: list[tuple[int, ...]] = []
    engine_step = TrainStep.__call__

    def counted(self: TrainStep, batch: dict) -> tuple[float, bool]:
        shapes.append(tuple(batch["input_ids"].shape))
        return engine_step(self, batch)

    monkeypatch.setattr(TrainStep, "__call__", counted)
    recipe = validate(RECIPE, text_overrides(tiny_bert_dir, tmp_path / "run", n_train=160, n_eval=16))
    figures = plan(recipe, steps=3)
    assert len(shapes) == 5 and figures["warmup_steps"] == 2 and figures["measured_steps"] == 3
    assert figures["batches_per_epoch"] == 10 and figures["size_unit"] == "padded tokens"
    # The length-grouped sampler puts the longest example in the first batch, as the engine's first epoch does.
    assert shapes[0][1] == max(s[1] for s in shapes) and len({s[1] for s in shapes}) > 1
    assert "from 3 engine steps after 2 warm-up" in format_plan(figures)


def test_plan_extrapolates_time_by_batch_size() -> None:
    from tl_toolkit._plan import _extrapolate

    # 0.5 s per batch plus 0.01 s per token, measured on three batches; an epoch of two batches.
    estimate, low, high = _extrapolate([100, 200, 300], [1.5, 2.5, 3.5], [100.0, 400.0])
    assert estimate == pytest.approx(1.5 + 4.5) and low == pytest.approx(estimate) == high
    # Images: every batch the same size, time in proportion; noisy times widen the range.
    estimate, low, high = _extrapolate([10, 10, 10, 10], [1.0, 1.2, 0.8, 1.0], [10.0] * 9 + [5.0])
    assert estimate == pytest.approx(9.5) and low < estimate < high
