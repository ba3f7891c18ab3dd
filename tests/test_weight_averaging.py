"""Weight averaging: ``train.ema`` survives kill and ``--resume`` exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import recorded_figures, run_tl
from test_resume import RECIPE, _kill_after_first_checkpoint


def test_ema_is_the_average_of_every_step() -> None:
    import torch

    from tl_toolkit._ema import EmaWeights

    param = torch.nn.Parameter(torch.zeros(3))
    ema = EmaWeights([param], 0.5)
    for value in (1.0, 2.0):
        param.data.fill_(value)
        ema.update()
    assert ema.average[0].tolist() == [1.25] * 3  # 0.5 * (0.5 * 0 + 0.5 * 1) + 0.5 * 2
    with ema.applied():
        assert param.tolist() == [1.25] * 3
    assert param.tolist() == [2.0] * 3
    restored = EmaWeights([torch.nn.Parameter(torch.zeros(3))], 0.5)
    restored.load_state_dict(ema.state_dict())
    assert restored.average[0].tolist() == [1.25] * 3 and restored.updates == 2


def test_ema_run_killed_and_resumed_ends_like_an_uninterrupted_one(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    recipe = tmp_path / "ema.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "strategy": {"plugin": "full"},
                                      "train": {**RECIPE["train"], "epochs": 2, "ema": 0.9}}))
    straight, resumed, plain = tmp_path / "straight", tmp_path / "resumed", tmp_path / "plain"
    assert run_tl("run", recipe, f"output_dir={straight}", "--quiet").returncode == 0
    _kill_after_first_checkpoint(recipe, resumed, "step-4")
    proc = run_tl("run", recipe, f"output_dir={resumed}", "--resume", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert run_tl("run", recipe, f"output_dir={plain}", "train.ema=null", "--quiet").returncode == 0

    summary = {d.name: json.loads((d / "summary.json").read_text()) for d in (straight, resumed, plain)}
    assert summary["resumed"]["eval"] == summary["straight"]["eval"]
    assert summary["plain"]["eval"] != summary["straight"]["eval"]  # the average, not the last weights
    weights = {d.name: load_file(str(d / "model" / "model.safetensors")) for d in (straight, resumed, plain)}
    for key, value in weights["straight"].items():
        assert (weights["resumed"][key] == value).all(), key
    assert any(not (weights["plain"][k] == v).all() for k, v in weights["straight"].items())


@pytest.mark.parametrize("value", ["1.5", "0"])
def test_ema_out_of_range_is_a_recipe_error(value: str, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "strategy": {"plugin": "full"}}))
    proc = run_tl("validate", recipe, f"train.ema={value}")
    assert proc.returncode == 2 and "train.ema" in proc.stderr


def _two_epoch_run(tmp_path: Path, **train: object) -> Path:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "strategy": {"plugin": "full"},
                                      "train": {**RECIPE["train"], "epochs": 3, "checkpoint_every_steps": None,
                                                **train}}))
    return recipe


@pytest.mark.parametrize("kind", ["uniform", "greedy"])
def test_soup_averages_kept_checkpoints_and_reports_them(kind: str, tmp_path: Path) -> None:
    recipe = _two_epoch_run(tmp_path, keep_checkpoints=3, soup=kind)
    out = tmp_path / kind
    proc = run_tl("run", recipe, f"output_dir={out}", "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    soup = summary["soup"]
    assert soup["kind"] == kind and soup["candidates"] == ["epoch-1", "epoch-2", "epoch-3"]
    epochs = [r["eval"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
              if r["kind"] == "eval"]
    if kind == "uniform":
        assert soup["ingredients"] == soup["candidates"]
    else:
        assert summary["eval"]["accuracy"] >= max(e["accuracy"] for e in epochs)  # greedy never drops
    report = (out / "report.md").read_text()
    said = (f"The saved model is the **{kind}** soup (the average of the weights) of {len(soup['ingredients'])} of "
            f"the 3 kept epoch checkpoints: {', '.join(soup['ingredients'])}. Its accuracy is "
            f"{summary['eval']['accuracy']:.4f}; the last checkpoint's (epoch-3) was {epochs[-1]['accuracy']:.4f}.")
    assert said in report.splitlines()
    if kind == "greedy":  # every checkpoint tried, in order of its own accuracy, with the soup's accuracy
        rows = [line for line in report.splitlines() if line.startswith("| epoch-")]
        assert [row.split(" | ")[0][2:] for row in rows] == [step["add"] for step in soup["steps"]]
        assert [row.endswith("| yes |") for row in rows] == [step["kept"] for step in soup["steps"]]


def test_soup_needs_two_checkpoints(tmp_path: Path) -> None:
    recipe = _two_epoch_run(tmp_path, soup="uniform")  # keep_checkpoints: 1, the default
    proc = run_tl("run", recipe, f"output_dir={tmp_path / 'one'}", "--quiet")
    assert proc.returncode == 2 and "train.soup" in proc.stderr and "keep_checkpoints" in proc.stderr
    assert not (tmp_path / "one").exists()  # refused before any training


def test_wise_ft_alpha_one_is_the_run_and_saves_a_run(tmp_path: Path) -> None:
    recipe = _two_epoch_run(tmp_path, epochs=1)
    out = tmp_path / "run"
    assert run_tl("run", recipe, f"output_dir={out}", "--quiet").returncode == 0
    from tl_toolkit._cli import main

    with recorded_figures() as figures:  # tl wise-ft in this process, to see what it draws
        assert main(["wise-ft", str(out), "--alphas", "0,0.5,1", "--save", "0.5", "data.max_eval_samples=16"]) == 0
    result = json.loads((out / "wise_ft" / "wise_ft.json").read_text())
    assert [r["alpha"] for r in result["curve"]] == [0, 0.5, 1]
    assert result["curve"][-1]["eval"] == result["summary_eval"]  # alpha 1 is the run itself, exactly
    assert "shifted" in result["curve"][0]
    [ax] = figures["wise_ft.png"].axes
    metric = result["metric"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("alpha (0: starting weights, 1: fine-tuned)", metric)
    drawn = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines}
    assert drawn == {name: ([0, 0.5, 1], [r[name][metric] for r in result["curve"]]) for name in ("eval", "shifted")}
    saved = out / "wise_ft" / "alpha-0.5"
    proc = run_tl("eval", saved, "--batch-size", "32")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["eval"] == result["curve"][1]["eval"]
    assert run_tl("wise-ft", out, "--alphas", "0,2").returncode == 2
    for save in ("nan", "2"):  # a model the curve did not measure is not saved
        proc = run_tl("wise-ft", out, "--alphas", "0,1", "--save", save)
        assert proc.returncode == 2 and "is not one of --alphas (0, 1)" in proc.stderr, proc.stderr
    assert sorted(p.name for p in (out / "wise_ft").iterdir()) == ["alpha-0.5", "wise_ft.json", "wise_ft.md",
                                                                    "wise_ft.png"]
