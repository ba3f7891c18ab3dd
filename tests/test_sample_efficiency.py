"""``tl compare --train-sizes --seeds``: the sample-efficiency grid, its report, and the feature cache across it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SST2, recorded_figures

from tl_toolkit import load_recipe
from tl_toolkit._cli import main
from tl_toolkit._sample_efficiency import sample_efficiency

pytestmark = pytest.mark.usefixtures("cache_in_tmp")


def _recipe(model: Path, out: Path, data: Path):
    return load_recipe({
        "name": "curve", "output_dir": str(out),
        "backbone": {"plugin": "bert", "model": str(model), "options": {"pooling": "mean"}},
        "data": {"format": "csv", "train": str(data / "train.tsv"), "eval": str(data / "dev.tsv"),
                 "text_column": "sentence", "max_length": 32},  # the whole dev file: the same at every seed
        "strategy": {"plugin": "head-only"},
        "train": {"epochs": 1, "batch_size": 8, "lr": 1e-2},
        "compare": {"options": {"contrastive": {"passes": 1, "batch_size": 8}}},
    })


def test_grid_runs_every_strategy_on_the_same_examples_and_reuses_eval_features(
    tiny_bert_dir: Path, tmp_path: Path, sst2: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = _recipe(tiny_bert_dir, tmp_path / "out", sst2)
    with recorded_figures() as figures:
        runs = sample_efficiency(recipe, ["head-only", "contrastive"], [2, 4], [0, 1])
    assert [(r.size, r.seed, r.strategy) for r in runs][:3] == [(2, 0, "head-only"), (2, 0, "contrastive"),
                                                              (2, 1, "head-only")]
    assert {r.train_examples for r in runs if r.size == 4} == {8}  # 4 per class, 2 classes
    root = tmp_path / "out" / "compare"
    for size, seed in ((2, 0), (4, 1)):  # one sample per size and seed, shared by the strategies
        prints = {json.loads((root / f"size-{size}" / f"seed-{seed}" / s / "model" / "manifest.json").read_text())
                  ["data"]["train_fingerprint"] for s in ("head-only", "contrastive")}
        assert len(prints) == 1
    # The frozen backbone's eval features were computed once, then read back at every other size and seed.
    hits = [json.loads((root / f"size-{z}" / f"seed-{s}" / "head-only" / "summary.json").read_text())
            ["feature_cache"]["hits"][1] for z in (2, 4) for s in (0, 1)]
    assert hits == [False, True, True, True]
    report = json.loads((root / "comparison.json").read_text())
    assert len(report["summary"]) == 4 and len(report["runs"]) == 8
    cell = next(r for r in report["summary"] if r["strategy"] == "head-only" and r["size"] == 2)
    import statistics

    both = [r.accuracy for r in runs if r.strategy == "head-only" and r.size == 2]
    assert cell["seeds"] == 2 and cell["accuracy_mean"] == pytest.approx(statistics.mean(both))
    assert cell["accuracy_std"] == pytest.approx(statistics.stdev(both))  # the sample std over the seeds
    assert len(report["winners"]) == 2 and report["winners"][0].startswith("At 2 examples per class, ")
    md = (root / "comparison.md").read_text()
    assert "| head-only | 4 |" in md
    [ax] = figures["comparison.png"].axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("labelled training examples per class", "eval accuracy")
    curves = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines}
    assert curves == {s: ([2, 4], [c["accuracy_mean"] for c in report["summary"] if c["strategy"] == s])
                      for s in ("head-only", "contrastive")}
    # Run again: every finished run of the same recipe is read back, not trained.
    capsys.readouterr()
    again = sample_efficiency(recipe, ["head-only", "contrastive"], [2, 4], [0, 1])
    assert [r.accuracy for r in again] == [r.accuracy for r in runs]
    assert capsys.readouterr().err.count("(finished before)") == 8


@pytest.mark.parametrize(("args", "words"), [
    (["--train-sizes", "8,x"], "--train-sizes: 'x' is not a number of examples per class"),
    (["--train-sizes", "8", "--seeds", "0,a"], "--seeds: 'a' is not a whole number"),
    (["--seeds", "0,1"], "--seeds: seeds apply to a sample-efficiency grid"),
])
def test_bad_grid_flags_are_one_sentence(tmp_path: Path, args: list[str], words: str, tiny_bert_dir: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nbackbone: {{plugin: bert, model: {tiny_bert_dir}}}\n"
                      f"data: {{format: csv, train: {SST2 / 'train.tsv'}, eval: {SST2 / 'dev.tsv'}}}\n")
    assert main(["compare", str(recipe), *args]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
