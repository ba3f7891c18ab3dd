"""What a finished run leaves for users: report.md with its plots, the model card, tracker logs, the manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from conftest import recorded_figures, tiny_text_recipe

from tl_toolkit._cli import main


def _recipe(out: Path, model: Path) -> dict:
    return tiny_text_recipe("report-text", out, model, epochs=2, log_every_steps=1, trackers=["tensorboard"])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    from tl_toolkit import finetune

    out = tmp_path_factory.mktemp("report-run")
    with recorded_figures() as figures:
        finetune(_recipe(out, tiny_bert_dir), quiet=True)
    FIGURES.update(figures)
    return out


FIGURES: dict = {}  # the figures the run fixture's finetune saved, by file name


def test_learning_curves_and_confusion_matrix_draw_the_runs_numbers(run: Path) -> None:
    import numpy as np

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train, evals = [r for r in rows if r["kind"] == "train"], [r for r in rows if r["kind"] == "eval"]
    loss_ax, score_ax = FIGURES["learning_curves.png"].axes
    assert (loss_ax.get_xlabel(), loss_ax.get_ylabel()) == ("epoch", "loss")
    assert (score_ax.get_xlabel(), score_ax.get_ylabel()) == ("epoch", "score on held-out data")
    drawn = {line.get_label(): line for line in loss_ax.lines}
    assert list(drawn) == ["train loss (logged steps)", "train loss (epoch mean)", "eval loss"]
    assert list(drawn["train loss (logged steps)"].get_ydata()) == [r["train_loss"] for r in train]
    assert list(drawn["train loss (epoch mean)"].get_ydata()) == [r["train_loss"] for r in evals]
    assert list(drawn["eval loss"].get_xdata()) == [1, 2]
    assert list(drawn["eval loss"].get_ydata()) == [r["eval"]["loss"] for r in evals]
    scores = {line.get_label(): list(line.get_ydata()) for line in score_ax.lines}
    assert scores == {"accuracy": [r["eval"]["accuracy"] for r in evals],
                      "macro-F1": [r["eval"]["f1_macro"] for r in evals]}

    (matrix_ax, *_) = FIGURES["confusion_matrix.png"].axes  # the colour bar is the second
    assert (matrix_ax.get_xlabel(), matrix_ax.get_ylabel()) == ("predicted label", "true label")
    summary = json.loads((run / "summary.json").read_text())
    assert [t.get_text() for t in matrix_ax.get_xticklabels()] == summary["label_names"]
    counts = np.asarray(matrix_ax.images[0].get_array())
    assert counts.sum(1).tolist() == [summary["per_class"][n]["support"] for n in summary["label_names"]]
    assert np.trace(counts) == round(summary["eval"]["accuracy"] * summary["num_eval_examples"])


def test_report_embeds_legible_plots_and_tables(run: Path) -> None:
    from PIL import Image

    report = (run / "report.md").read_text()
    summary = json.loads((run / "summary.json").read_text())
    for png in ("learning_curves.png", "confusion_matrix.png"):
        assert f"]({png})" in report
        width, height = Image.open(run / png).size
        assert width >= 500 and height >= 400  # big enough to read the axis labels
    per_class = summary["per_class"]
    assert list(per_class) == summary["label_names"]
    assert sum(m["support"] for m in per_class.values()) == summary["num_eval_examples"]
    mean_f1 = sum(m["f1"] for m in per_class.values()) / len(per_class)
    assert mean_f1 == pytest.approx(summary["eval"]["f1_macro"], abs=1e-5)
    for name, m in per_class.items():
        assert f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |" in report
    assert f"{summary['trainable_params']:,} of {summary['total_params']:,} parameters trained" in report
    assert "## Timings" in report and "| 2 |" in report  # one timing row per epoch
    assert yaml.safe_load(report.split("```yaml\n")[1].split("```")[0])["train"]["epochs"] == 2


def test_model_card_metadata_parses_and_manifest_pins_the_run(run: Path) -> None:
    from importlib.metadata import version

    from huggingface_hub import ModelCard

    text = (run / "model" / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    summary = json.loads((run / "summary.json").read_text())
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-classification"
    assert meta["datasets"] == ["sst2"] and "tl-toolkit" in meta["tags"]
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics["accuracy"] == pytest.approx(summary["eval"]["accuracy"], abs=1e-6)
    assert ModelCard.load(run / "model" / "README.md").data.library_name == "peft"  # the hub's own parser

    manifest = json.loads((run / "model" / "manifest.json").read_text())
    assert manifest["recipe_sha256"] == hashlib.sha256((run / "recipe.yaml").read_bytes()).hexdigest()
    assert manifest["libraries"]["torch"] == version("torch") and manifest["seed"] == 0
    assert len(manifest["backbone"]["start_weights_sha256"]) == 64
    assert manifest["data"]["num_eval_examples"] == summary["num_eval_examples"]
    assert json.dumps(manifest, indent=2) in text  # the card carries the manifest too


def test_tensorboard_events_hold_the_eval_metric(run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["kind"] == "eval"]
    events = sorted((run / "trackers").rglob("events.out.tfevents.*"))
    assert events, "train.trackers: [tensorboard] writes event files under output_dir/trackers"
    scalars: dict[str, list] = {}
    for file in events:
        acc = EventAccumulator(str(file)).Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(acc.Scalars(tag))
    got = [(e.step, e.value) for e in sorted(scalars["eval/accuracy"], key=lambda e: e.step)]
    assert got == [(r["step"], pytest.approx(r["eval"]["accuracy"], abs=1e-6)) for r in evals]
    assert len(scalars["train/loss"]) == sum(r["kind"] == "train" for r in rows)


def test_unknown_or_missing_tracker_is_a_recipe_error(tmp_path: Path, tiny_bert_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from tl_toolkit import _trackers

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(_recipe(tmp_path / "out", tiny_bert_dir)))
    assert main(["validate", str(recipe), "train.trackers=[tensorbord]"]) == 2
    assert "unknown tracker 'tensorbord'. Did you mean 'tensorboard'?" in capsys.readouterr().err
    monkeypatch.setitem(_trackers.TRACKER_PACKAGES, "wandb", ("tl_no_such_module", "wandb"))
    assert main(["validate", str(recipe), "train.trackers=[wandb]"]) == 2
    assert "`pip install wandb`" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_from_manifest_reruns_the_same_recipe(run: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    again = tmp_path / "again"
    assert main(["run", "--from-manifest", str(run / "model"), f"output_dir={again}", "--quiet"]) == 0
    first, second = (json.loads((d / "summary.json").read_text()) for d in (run, again))
    assert second["eval"] == pytest.approx(first["eval"], rel=1e-5)
    m1, m2 = (json.loads((d / "model" / "manifest.json").read_text()) for d in (run, again))
    assert m2["data"] == m1["data"] and m2["backbone"] == m1["backbone"]
    err = capsys.readouterr().err
    assert "data." not in err and "start_weights" not in err  # same data, same starting weights: no note

    assert main(["run", "--from-manifest", str(tmp_path)]) == 2
    assert "holds no manifest.json" in capsys.readouterr().err
