"""Source -> target transfer from adapter runs: the merged adapters are the target's starting point."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import SST2

from tl_toolkit import finetune, load_model_dir


def test_transfer_from_a_lora_text_run(tmp_path: Path, tiny_bert_dir: Path) -> None:
    data = {"format": "csv", "train": str(SST2 / "train.tsv"), "eval": str(SST2 / "dev.tsv"),
            "text_column": "sentence", "max_train_samples": 48, "max_eval_samples": 16, "max_length": 48}
    source = finetune(
        {"name": "src", "output_dir": str(tmp_path / "src"), "backbone": {"plugin": "bert", "model": str(tiny_bert_dir)},
         "data": data, "strategy": {"plugin": "lora", "options": {"r": 4}},
         "train": {"epochs": 1, "batch_size": 16, "lr": 5e-2}},
        quiet=True,
    )
    target = finetune(
        {"name": "tgt", "output_dir": str(tmp_path / "tgt"),
         "backbone": {"plugin": "bert", "model": str(tiny_bert_dir), "init_from": str(source.output_dir)},
         "data": data, "strategy": {"plugin": "head-only"}, "train": {"epochs": 1, "batch_size": 16}},
        quiet=True,
    )
    merged = load_model_dir(source.output_dir, merge=True).model.state_dict()
    body = {k: v for k, v in target.model.state_dict().items() if not k.startswith("classifier.")}
    query = "bert.encoder.layer.0.attention.self.query.weight"
    for key, value in body.items():
        torch.testing.assert_close(value.cpu(), merged[key].cpu(), msg=f"{key} is not the merged source's")
    # The adapters moved the query projection away from the pretrained encoder's.
    from transformers import AutoModel

    pretrained = AutoModel.from_pretrained(tiny_bert_dir).state_dict()
    assert not torch.allclose(body[query].cpu(), pretrained[query.removeprefix("bert.")])


def _same_sentences(directory: Path) -> dict[str, str]:
    """Train and eval files where every sentence is the same and the labels alternate: nothing can be learned,
    so every model scores exactly 0.5 and a transfer's gain over scratch is exactly 0."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = "text,label\n" + "".join(f"the film is good,{'positive' if i % 2 else 'negative'}\n" for i in range(32))
    for split in ("train", "eval"):
        (directory / f"{split}.csv").write_text(rows, encoding="utf-8")
    return {"format": "csv", "train": str(directory / "train.csv"), "eval": str(directory / "eval.csv")}


def test_transfer_that_does_not_help_says_so_and_what_to_check(tmp_path: Path, tiny_bert_dir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = _same_sentences(tmp_path / "data")
    source = finetune({"name": "src", "output_dir": str(tmp_path / "src"),
                       "backbone": {"plugin": "bert", "model": str(tiny_bert_dir)},
                       "data": {**data, "max_length": 32}, "train": {"epochs": 1, "batch_size": 16}}, quiet=True)
    finetune({"name": "tgt", "output_dir": str(tmp_path / "tgt"), "baselines": ["scratch"],
              "backbone": {"plugin": "bert", "model": str(tiny_bert_dir), "init_from": str(source.output_dir)},
              "data": {**data, "max_length": 48},
              "train": {"epochs": 2, "batch_size": 16, "lr": 1e-3, "backbone_lr_ratio": 0.5}})
    printed = capsys.readouterr().out
    report = (tmp_path / "tgt" / "report.md").read_text()
    verdict = "Transfer did not help: accuracy is +0.0 pt against the same recipe trained from scratch."
    assert "## Transfer did not help" in report and f"**{verdict}**" in report
    lines = printed.rstrip().splitlines()
    assert lines[lines.index(verdict) - 1].startswith("tgt: accuracy 0.5000")  # the run's last lines
    assert lines[-1].startswith("Try next: ")
    for sentence in (
        "The transferred run led scratch in 0 of 2 epochs.",
        "Preprocessing differences from the source run: data.max_length is 48 here and was 32 in the source run.",
        "Learning rate per layer: the head 0.001, the transferred backbone weights 0.0005 "
        "(train.backbone_lr_ratio 0.5).",
        "The transferred run never led scratch: the source features may not suit this task; try strategy "
        "head-only to measure what the frozen features alone are worth, or a source task closer to this one.",
        "The inputs are prepared differently from the source run: make the settings listed above match the "
        "source run's, or train the source with this run's settings.",
    ):
        assert sentence in report and sentence in printed, sentence
    drift = [line for line in report.splitlines() if line.startswith("- Drift of the backbone")]
    assert len(drift) == 1 and re.search(r"weights\): \S+ \d\.\d\d", drift[0]), drift
    summary = json.loads((tmp_path / "tgt" / "summary.json").read_text())
    assert summary["transfer_check"]["gain"] == 0.0 and summary["backbone_lr_ratio"] == 0.5


def test_transferred_weights_train_below_the_head_and_scratch_at_one_rate() -> None:
    from tl_toolkit import Recipe, Task, TrainConfig
    from tl_toolkit._transfer_lr import scale_transferred, transfer_rates
    from tl_toolkit.testing import tiny_backbone

    backbone = tiny_backbone("resnet")
    model = backbone.build(Task(["a", "b", "c"]))
    recipe = Recipe.model_validate({"name": "r", "backbone": {"plugin": "resnet", "model": "resnet18"},
                                    "data": {"format": "digits"}, "train": {"lr": 1e-3, "backbone_lr_ratio": 0.1}})
    groups = [{"params": list(model.parameters()), "weight_decay": 0.0}]
    scaled = scale_transferred(groups, transfer_rates(recipe, backbone, model, transferred=True))
    by_id = {id(p): g.get("lr_scale", 1.0) for g in scaled for p in g["params"]}
    assert by_id[id(model.fc.weight)] == 1.0 and by_id[id(model.fc.bias)] == 1.0  # the fresh head
    assert {by_id[id(p)] for n, p in model.named_parameters() if not n.startswith("fc.")} == {0.1}
    assert scale_transferred(groups, transfer_rates(recipe, backbone, model, transferred=False)) == groups
    assert TrainConfig().backbone_lr_ratio == 1.0  # the default: one rate for the whole model, groups untouched
    default = recipe.model_copy(update={"train": TrainConfig(lr=1e-3)})
    assert scale_transferred(groups, transfer_rates(default, backbone, model, transferred=True)) == groups
    # LoRA freezes the transferred weights: its adapters and the head are new, so they keep their own rates.
    from tl_toolkit.testing import load_plugin

    lora = load_plugin("strategy", "lora")({"r": 4})
    rates = transfer_rates(recipe, backbone, model, transferred=True)
    adapted = lora.apply(model, backbone)
    lora_groups = lora.parameter_groups(adapted, 0.0)
    assert lora_groups and scale_transferred(lora_groups, rates) == lora_groups


@pytest.mark.parametrize(("image_size", "source_size", "expected"), [
    (32, 32, [0.2, 1.0]),      # the source's own size: its crop range
    (64, 32, [0.8, 1.0]),      # twice as large: crops of at least 4 x 0.2 of the area
    (128, 32, [1.0, 1.0]),     # four times: whole images only
    (16, 32, [0.05, 1.0]),     # half the size: smaller crops zoom in as far as the source's did
    (None, 32, [1.0, 1.0]),    # the model's own size (224 for resnet18)
    (112, None, [0.05, 1.0]),  # a source at the model's own size, a target at half of it
])
def test_resnet_target_takes_the_source_crop_range_scaled_by_the_image_size(
        image_size: int | None, source_size: int | None, expected: list[float]) -> None:
    from tl_toolkit import BackboneConfig, DataConfig
    from tl_toolkit.testing import tiny_backbone

    backbone = tiny_backbone("resnet", image_size=image_size)
    source_data = DataConfig(format="digits", image_size=source_size)

    def offered(**options: object) -> dict[str, object]:
        return backbone.transfer_options(BackboneConfig(plugin="resnet", model="resnet18", options=options),
                                         source_data)

    assert offered(scale=[0.2, 1.0], hflip=0.0, mixup=0.2) == {
        "scale": expected, "hflip": 0.0, "augment": True, "auto_augment": None}  # no mixup
    # Options of another version of the plugin: unknown ones are ignored, invalid ones offer nothing.
    assert offered(hflip=0.0, retired_option=1)["hflip"] == 0.0
    assert offered(hflip=7) == {}


def test_an_image_target_takes_the_preprocessing_its_recipe_leaves_unset(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    data = {"format": "digits", "train": "train", "eval": "test", "max_train_samples": 32, "max_eval_samples": 16}
    source = finetune({"name": "src", "output_dir": str(tmp_path / "src"),
                       "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False,
                                    "options": {"hflip": 0.0, "scale": [0.4, 1.0]}},
                       "data": {**data, "image_size": 16}, "train": {"epochs": 1, "batch_size": 16}}, quiet=True)
    for name, options, taken in (
        ("tgt", {}, {"scale": [1.0, 1.0], "hflip": 0.0}),  # augment and auto_augment: the source's are the defaults
        ("own", {"scale": [0.7, 1.0], "augment": False}, {"hflip": 0.0}),
    ):
        out = tmp_path / name
        finetune({"name": name, "output_dir": str(out), "baselines": ["scratch"],
                  "backbone": {"plugin": "resnet", "model": "resnet18", "init_from": str(source.output_dir),
                               "options": options},
                  "data": {**data, "image_size": 32}, "train": {"epochs": 1, "batch_size": 16}})
        resolved = {**options, **taken}
        for run in (out, out / "baselines" / "scratch"):  # the scratch baseline is fed the same way
            assert yaml.safe_load((run / "recipe.yaml").read_text())["backbone"]["options"] == resolved
        assert json.loads((out / "summary.json").read_text())["inherited_options"] == taken
        shown = ", ".join(f"backbone.options.{k}={json.dumps(v)}" for k, v in taken.items())
        printed = capsys.readouterr().out
        assert f"{name}: from the source run, {shown} (set them in the recipe to choose)" in printed
        # the run ends with its gain over scratch, or, at or below zero, with what it found
        assert (f"{name}: transfer gain over scratch: " in printed) != ("Transfer did not help" in printed)
    # tl validate says beforehand what a run will take (the source run is finished).
    from tl_toolkit._cli import main

    file = tmp_path / "tgt.yaml"
    file.write_text(yaml.safe_dump({"name": "tgt", "output_dir": str(tmp_path / "later"), "backbone": {
        "plugin": "resnet", "model": "resnet18", "init_from": str(source.output_dir)}, "data": {**data, "image_size": 32}}))
    assert main(["validate", str(file)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"{file}: from the source run, backbone.options.scale=[1.0, 1.0], backbone.options.hflip=0.0 "
        f"(set them in the recipe to choose)")
    # tl plan measures the run it will be (those options included) and says so on its second line.
    assert main(["plan", str(file), "--steps", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        "taken:        from the source run, backbone.options.scale=[1.0, 1.0], backbone.options.hflip=0.0 "
        "(set them in the recipe to choose)")


def test_validate_previews_what_a_target_takes_from_a_source_recipe_not_yet_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from tl_toolkit._cli import main

    data = {"format": "digits", "train": "train", "eval": "test"}
    source = tmp_path / "src.yaml"
    source.write_text(yaml.safe_dump({"name": "src", "output_dir": str(tmp_path / "src"), "backbone": {
        "plugin": "resnet", "model": "resnet18", "pretrained": False, "options": {"hflip": 0.0, "scale": [0.2, 1.0]}},
        "data": {**data, "image_size": 16}}))
    target = tmp_path / "tgt.yaml"
    target.write_text(yaml.safe_dump({"name": "tgt", "output_dir": str(tmp_path / "tgt"), "backbone": {
        "plugin": "resnet", "model": "resnet18", "init_from": str(source)}, "data": {**data, "image_size": 32}}))
    assert main(["validate", str(target)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"{target}: from the source run, backbone.options.scale=[0.8, 1.0], backbone.options.hflip=0.0 "
        f"(set them in the recipe to choose)")
    assert not (tmp_path / "src").exists()  # nothing was trained


def test_no_gain_findings_list_the_options_taken_from_the_source_apart_from_the_differences() -> None:
    from tl_toolkit._transfer_check import findings_lines

    findings = {"metric": "accuracy", "gain": -0.01, "drift": {}, "lead": {"epochs": 0, "led": []},
                "preprocessing": ["data.image_size is 64 here and was 32 in the source run."],
                "taken": {"scale": [1.0, 1.0], "hflip": 0.5},
                "lr": {"head": 1e-3, "transferred": 1e-3, "ratio": 1.0, "layer_decay": None}, "next": []}
    lines = findings_lines(findings, markdown=False)
    assert lines[1:3] == [
        "Preprocessing differences from the source run: data.image_size is 64 here and was 32 in the source run.",
        "Taken from the source run and adjusted to this run's data: backbone.options.scale [1.0, 1.0], "
        "backbone.options.hflip 0.5.",
    ]


def test_gain_text_gives_points_for_rising_scores_and_the_difference_for_falling_ones() -> None:
    from tl_toolkit._transfer_check import gain_text

    assert gain_text({"accuracy": 0.268, "f1_macro": -0.01}, {"accuracy": "max", "f1_macro": "max"},
                     {"f1_macro": "macro-F1"}) == "+26.8 pt accuracy, -1.0 pt macro-F1"
    assert gain_text({"mse": -0.125, "pearson": 0.05}, {"mse": "min", "pearson": "max"}) == (
        "mse -0.125 (lower is better), +5.0 pt pearson")


def test_far_drift_advice_warns_that_resized_images_may_need_the_full_rate() -> None:
    from tl_toolkit import Recipe
    from tl_toolkit._transfer_check import _next_steps

    recipe = Recipe.model_validate({"name": "t", "backbone": {"plugin": "resnet", "model": "resnet18"},
                                    "data": {"format": "digits"}})
    findings = {"drift": {"layer4": 0.8}, "lead": {"epochs": 0, "led": []}, "metric": "accuracy",
                "lr": {"ratio": 1.0}, "preprocessing": []}
    same = _next_steps(findings, recipe)[0]
    assert same.endswith("lower train.backbone_lr_ratio (now 1) to 0.3, or train fewer epochs.")
    resized = _next_steps({**findings, "resized": True,
                           "preprocessing": ["data.image_size is 64 here and was 32 in the source run."]}, recipe)[0]
    assert resized.endswith("or train fewer epochs (the images changed size, and the backbone then often needs its "
                            "full rate to adapt: run both and compare).")


def test_compare_feeds_its_scratch_run_as_the_transferred_runs_and_reuses_finished_grid_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from tl_toolkit import Recipe
    from tl_toolkit._compare import compare
    from tl_toolkit._sample_efficiency import sample_efficiency

    data = {"format": "digits", "train": "train", "eval": "test", "max_train_samples": 32, "max_eval_samples": 16}
    source = finetune({"name": "src", "output_dir": str(tmp_path / "src"),
                       "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False,
                                    "options": {"hflip": 0.0, "scale": [0.8, 1.0]}},
                       "data": {**data, "image_size": 16}, "train": {"epochs": 1, "batch_size": 16}}, quiet=True)
    recipe = Recipe.model_validate({
        "name": "tgt", "output_dir": str(tmp_path / "tgt"),
        "backbone": {"plugin": "resnet", "model": "resnet18", "init_from": str(source.output_dir)},
        "data": {**data, "image_size": 32}, "train": {"epochs": 1, "batch_size": 16}})
    taken = {"hflip": 0.0, "scale": [1.0, 1.0]}
    compare(recipe, ["head-only"], tmp_path / "cmp", quiet=True)
    for name in ("head-only", "scratch"):
        assert yaml.safe_load((tmp_path / "cmp" / name / "recipe.yaml").read_text())["backbone"]["options"] == taken
    first = sample_efficiency(recipe, ["head-only", "scratch"], [4], [0], tmp_path / "grid", quiet=True)
    capsys.readouterr()
    again = sample_efficiency(recipe, ["head-only", "scratch"], [4], [0], tmp_path / "grid", quiet=False)
    assert again == first  # read back, not trained again: the resolved recipe matches the saved one
    # said once, before the runs (which see the options as the recipe's own and print nothing of them)
    assert capsys.readouterr().out.count("from the source run,") == 1
    scratch = tmp_path / "grid" / "size-4" / "seed-0" / "scratch" / "recipe.yaml"
    assert yaml.safe_load(scratch.read_text())["backbone"]["options"] == taken
