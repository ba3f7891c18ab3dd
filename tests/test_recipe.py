"""The recipe schema: defaults, overrides, problems reported at once, plugin options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

import tl_toolkit
from tl_toolkit import BackboneConfig, DataConfig, Recipe, RecipeError, StrategyConfig, TrainConfig
from tl_toolkit._recipe import load_recipe, parse_overrides
from tl_toolkit._validate import check_recipe, validate


@pytest.fixture
def minimal() -> dict[str, Any]:
    """The smallest valid recipe: every other key takes the schema's default."""
    return {
        "name": "demo",
        "backbone": {"plugin": "resnet", "model": "resnet18"},
        "data": {"format": "digits"},
    }


@pytest.fixture
def full() -> dict[str, Any]:
    """A recipe that sets most keys, including plugin options and lists."""
    return {
        "name": "sst2-minilm-lora",
        "seed": 7,
        "output_dir": "runs/custom",
        "backbone": {"plugin": "bert", "model": "sentence-transformers/all-MiniLM-L6-v2", "pretrained": True},
        "data": {
            "format": "csv",
            "train": "train.tsv",
            "eval": "dev.tsv",
            "text_column": "sentence",
            "label_column": "label",
            "classes": [0, 1],
            "max_train_samples": 200,
        },
        "strategy": {"plugin": "lora", "options": {"r": 4, "alpha": 8, "target_modules": ["query", "value"]}},
        "train": {
            "epochs": 2,
            "batch_size": 16,
            "lr": 1.0e-4,
            "mixed_precision": "bf16",
            "scheduler": "cosine",
        },
        "baselines": ["scratch"],
    }


def _problems(source: Any, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(RecipeError) as excinfo:
        load_recipe(source, overrides)
    return excinfo.value.problems


# -- defaults ----------------------------------------------------------------


def test_defaults_fill_a_minimal_recipe(minimal: dict[str, Any]) -> None:
    recipe = load_recipe(minimal)
    assert recipe.output_dir == "runs/demo"
    assert recipe.seed == 0
    assert recipe.backbone.pretrained is True
    assert recipe.backbone.init_from is None
    assert recipe.backbone.options == {}
    assert recipe.data.text_column == "text"
    assert recipe.data.label_column == "label"
    assert recipe.data.max_train_samples is None
    assert recipe.strategy.plugin == "full"
    assert recipe.strategy.options == {}
    assert (recipe.train.epochs, recipe.train.batch_size, recipe.train.lr) == (3, 32, 2.0e-5)
    assert recipe.train.mixed_precision == "auto"
    assert recipe.baselines == []


def test_defaults_live_on_the_schema_fields() -> None:
    assert Recipe.model_fields["seed"].default == 0
    assert Recipe.model_fields["output_dir"].default is None  # resolved to runs/<name> by the schema
    assert StrategyConfig.model_fields["plugin"].default == "full"
    assert TrainConfig.model_fields["epochs"].default == 3
    assert TrainConfig.model_fields["batch_size"].default == 32
    assert TrainConfig.model_fields["lr"].default == 2.0e-5
    assert TrainConfig.model_fields["mixed_precision"].default == "auto"
    assert BackboneConfig.model_fields["pretrained"].default is True
    assert DataConfig.model_fields["max_train_samples"].default is None


def test_explicit_output_dir_is_kept(minimal: dict[str, Any]) -> None:
    assert load_recipe({**minimal, "output_dir": "elsewhere/x"}).output_dir == "elsewhere/x"


def test_output_dir_follows_an_overridden_name(minimal: dict[str, Any]) -> None:
    assert load_recipe(minimal, ["name=other"]).output_dir == "runs/other"


def test_classes_are_kept_as_written_strings(minimal: dict[str, Any]) -> None:
    minimal["data"]["classes"] = [5, 6]
    assert load_recipe(minimal).data.classes == ["5", "6"]


# -- overrides ---------------------------------------------------------------


def test_dotted_overrides_parse_yaml_values(minimal: dict[str, Any]) -> None:
    recipe = load_recipe(
        minimal, ["train.epochs=1", "strategy.plugin=lora", "data.max_train_samples=200", "train.lr=0.001"]
    )
    assert recipe.train.epochs == 1
    assert recipe.strategy.plugin == "lora"
    assert recipe.data.max_train_samples == 200
    assert recipe.train.lr == pytest.approx(1e-3)


def test_parse_overrides_builds_a_nested_dict_of_yaml_values() -> None:
    assert parse_overrides(
        [
            "train.epochs=1",
            "backbone.pretrained=false",
            "backbone.init_from=null",
            "strategy.options.target_modules=[query, value]",
            "strategy.options.r=4",
            "name=a=b",
        ]
    ) == {
        "train": {"epochs": 1},
        "backbone": {"pretrained": False, "init_from": None},
        "strategy": {"options": {"target_modules": ["query", "value"], "r": 4}},
        "name": "a=b",
    }


def test_overrides_add_nested_new_keys(minimal: dict[str, Any]) -> None:
    recipe = load_recipe(
        minimal,
        [
            "strategy.options.r=4",
            "strategy.options.target_modules=[conv1, conv2]",
            "backbone.options.hflip=0.0",
        ],
    )
    assert recipe.strategy.options == {"r": 4, "target_modules": ["conv1", "conv2"]}
    assert recipe.backbone.options == {"hflip": 0.0}


def test_overrides_merge_deeply_and_keep_siblings(minimal: dict[str, Any]) -> None:
    minimal["train"] = {"epochs": 5, "batch_size": 8}
    minimal["strategy"] = {"plugin": "lora", "options": {"r": 16, "alpha": 32}}
    recipe = load_recipe(minimal, ["train.epochs=1", "strategy.options.r=4"])
    assert (recipe.train.epochs, recipe.train.batch_size) == (1, 8)
    assert recipe.strategy.options == {"r": 4, "alpha": 32}
    assert minimal["train"]["epochs"] == 5  # the source mapping is not mutated


def test_overrides_as_a_dict(minimal: dict[str, Any]) -> None:
    recipe = load_recipe(minimal, {"train": {"epochs": 2}})
    assert recipe.train.epochs == 2


def test_override_mixed_precision_no_means_the_string_no(minimal: dict[str, Any]) -> None:
    # `no` is YAML 1.1 for false; the documented value of mixed_precision is the word "no".
    minimal["train"] = {"mixed_precision": "bf16"}
    assert load_recipe(minimal, ["train.mixed_precision=no"]).train.mixed_precision == "no"


@pytest.mark.parametrize("item", ["train.epochs", "=1", "train..epochs=1", ".epochs=1", "train.=1", "epochs"])
def test_bad_override_syntax_is_a_recipe_error(minimal: dict[str, Any], item: str) -> None:
    problems = _problems(minimal, [item])
    assert len(problems) == 1
    assert repr(item) in problems[0]
    assert "KEY=VALUE" in problems[0]


def test_every_bad_override_is_reported() -> None:
    with pytest.raises(RecipeError) as excinfo:
        parse_overrides(["train.epochs", "ok=1", "=2"])
    assert len(excinfo.value.problems) == 2


def test_override_below_a_scalar_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="cannot have sub-keys"):
        parse_overrides(["seed=1", "seed.value=2"])


def test_override_with_an_unknown_key_suggests_the_nearest(minimal: dict[str, Any]) -> None:
    [problem] = _problems(minimal, ["train.epoch=1"])
    assert "'train.epoch'" in problem
    assert "Did you mean 'epochs'?" in problem


# -- problems ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "nearest"),
    [
        ("train", "epoch", "epochs"),
        ("train", "learning_rate", None),
        ("data", "text_colum", "text_column"),
        ("backbone", "pretrain", "pretrained"),
        ("strategy", "plugins", "plugin"),
        (None, "strategie", "strategy"),
    ],
)
def test_unknown_key_is_named_with_the_nearest_valid_key(
    minimal: dict[str, Any], section: str | None, key: str, nearest: str | None
) -> None:
    if section is None:
        minimal[key] = {}
    else:
        minimal.setdefault(section, {})[key] = 1
    dotted = f"{section}.{key}" if section else key
    [problem] = _problems(minimal)
    assert f"unknown key {dotted!r}" in problem
    if nearest:
        assert f"Did you mean {nearest!r}?" in problem
    else:
        assert "Did you mean" not in problem
    assert "Valid keys" in problem
    if section == "train":
        assert "epochs" in problem and "batch_size" in problem  # lists the valid keys of that section


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("train", "epochs", "three", "valid integer"),
        ("train", "lr", "fast", "valid number"),
        ("train", "epochs", 0, "greater than or equal to 1"),
        ("data", "max_train_samples", -5, "greater than or equal to 1"),
        ("backbone", "pretrained", "sometimes", "valid boolean"),
        ("strategy", "options", [1, 2], "expected a section of keys"),
        (None, "seed", "zero", "valid integer"),
    ],
)
def test_wrong_type_names_the_key_and_the_value(
    minimal: dict[str, Any], section: str | None, key: str, value: Any, expected: str
) -> None:
    if section is None:
        minimal[key] = value
    else:
        minimal.setdefault(section, {})[key] = value
    dotted = f"{section}.{key}" if section else key
    [problem] = _problems(minimal)
    assert problem.startswith(f"recipe 'demo': {dotted}:")
    assert expected in problem
    assert repr(value) in problem


def test_section_given_as_a_scalar(minimal: dict[str, Any]) -> None:
    minimal["train"] = "fast"
    [problem] = _problems(minimal)
    assert "train: expected a section of keys, got 'fast'" in problem


@pytest.mark.parametrize(
    ("section", "key", "value", "choices"),
    [
        ("train", "mixed_precision", "fp8", ["'no'", "'fp16'", "'bf16'"]),
        ("train", "scheduler", "step", ["'linear'", "'cosine'", "'constant'"]),
        ("data", "format", "xlsx", ["'csv'", "'imagefolder'", "'digits'"]),
    ],
)
def test_bad_enum_names_the_choices(
    minimal: dict[str, Any], section: str, key: str, value: str, choices: list[str]
) -> None:
    minimal.setdefault(section, {})[key] = value
    [problem] = _problems(minimal)
    assert f"{section}.{key}: {value!r} is not allowed" in problem
    for choice in choices:
        assert choice in problem


@pytest.mark.parametrize(
    ("key", "value", "choices"),
    [("gradient_checkpointing", "maybe", ["a valid boolean", "'auto'"]),
     ("class_weights", "heavy", ["'auto'", "a valid list"])],
)
def test_bad_value_of_a_union_key_is_one_sentence(
    minimal: dict[str, Any], key: str, value: str, choices: list[str]
) -> None:
    # One problem naming the key and every kind of value it takes, not one per member of the union type.
    minimal.setdefault("train", {})[key] = value
    [problem] = _problems(minimal)
    assert f"train.{key}: {value!r} is not allowed; give " in problem
    for choice in choices:
        assert choice in problem


def test_missing_required_key(minimal: dict[str, Any]) -> None:
    del minimal["backbone"]["model"]
    [problem] = _problems(minimal)
    assert "backbone.model: required key is missing" in problem


def test_all_problems_are_reported_at_once(minimal: dict[str, Any]) -> None:
    minimal["train"] = {"epoch": 1, "mixed_precision": "fp8", "batch_size": "big"}
    del minimal["backbone"]["model"]
    problems = _problems(minimal)
    assert len(problems) == 4, problems
    text = "\n".join(problems)
    for key in ("train.epoch", "train.mixed_precision", "train.batch_size", "backbone.model"):
        assert key in text
    assert all(p.startswith("recipe 'demo': ") for p in problems)


def test_problems_from_a_file_name_the_file(tmp_path: Path, minimal: dict[str, Any]) -> None:
    minimal["train"] = {"epoch": 1}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(minimal), encoding="utf-8")
    [problem] = _problems(path)
    assert problem.startswith(f"{path}: unknown key 'train.epoch'")


# -- reading files -----------------------------------------------------------


def test_missing_recipe_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    [problem] = _problems(path)
    assert str(path) in problem and "not found" in problem


def test_recipe_path_is_a_directory(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path)
    assert "directory" in problem


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nbackbone: {plugin: bert\ndata: [\n", encoding="utf-8")
    [problem] = _problems(path)
    assert str(path) in problem
    assert "not valid YAML at line" in problem


def test_recipe_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- name\n- backbone\n", encoding="utf-8")
    [problem] = _problems(path)
    assert "mapping" in problem


# -- round trip and building in code -----------------------------------------


def test_to_yaml_round_trips(full: dict[str, Any], tmp_path: Path) -> None:
    recipe = load_recipe(full)
    text = recipe.to_yaml()
    assert load_recipe(yaml.safe_load(text)) == recipe
    path = tmp_path / "resolved.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_recipe(path) == recipe


def test_to_yaml_writes_defaults_and_overrides(minimal: dict[str, Any]) -> None:
    recipe = load_recipe(minimal, ["train.epochs=1", "strategy.plugin=lora", "train.mixed_precision=no"])
    resolved = yaml.safe_load(recipe.to_yaml())
    assert resolved["output_dir"] == "runs/demo"
    assert resolved["train"]["epochs"] == 1
    assert resolved["train"]["batch_size"] == 32
    assert resolved["train"]["mixed_precision"] == "no"  # quoted, so it stays the string
    assert resolved["strategy"] == {"plugin": "lora", "options": {}}
    assert load_recipe(resolved) == recipe


def test_recipe_built_in_code() -> None:
    recipe = tl_toolkit.Recipe(
        name="in-code",
        backbone=tl_toolkit.BackboneConfig(plugin="resnet", model="resnet18", pretrained=False),
        data=tl_toolkit.DataConfig(format="digits", classes=["0", "1"]),
        strategy=tl_toolkit.StrategyConfig(plugin="lora", options={"r": 4}),
        train=tl_toolkit.TrainConfig(epochs=1, batch_size=8),
    )
    assert recipe.output_dir == "runs/in-code"
    assert recipe.strategy.options == {"r": 4}
    assert check_recipe(recipe) == []
    assert validate(recipe) == recipe
    overridden = load_recipe(recipe, ["train.epochs=2"])
    assert overridden.train.epochs == 2
    assert overridden.train.batch_size == 8
    assert recipe.train.epochs == 1
    assert load_recipe(yaml.safe_load(recipe.to_yaml())) == recipe


def test_recipe_built_in_code_from_plain_dicts() -> None:
    recipe = tl_toolkit.Recipe(
        name="dicts", backbone={"plugin": "bert", "model": "m"}, data={"format": "csv", "train": "t.csv"}
    )
    assert isinstance(recipe.backbone, BackboneConfig)
    assert recipe.strategy.plugin == "full"


def test_recipe_in_code_rejects_unknown_keys() -> None:
    with pytest.raises(pydantic.ValidationError, match="epoch"):
        TrainConfig(epoch=1)  # type: ignore[call-arg]


# -- plugin options ----------------------------------------------------------


def test_unknown_strategy_option_names_its_key(minimal: dict[str, Any]) -> None:
    minimal["strategy"] = {"plugin": "lora", "options": {"rank": 8}}
    problems = check_recipe(load_recipe(minimal))
    assert len(problems) == 1, problems
    assert problems[0].startswith("strategy.options.rank: unknown option")
    assert "target_modules, layer_decay, lr_ratio, r, alpha, dropout, use_dora" in problems[0]


def test_unknown_option_suggests_the_nearest(minimal: dict[str, Any]) -> None:
    minimal["strategy"] = {"plugin": "lora", "options": {"alpah": 8}}
    [problem] = check_recipe(load_recipe(minimal))
    assert "strategy.options.alpah" in problem and "Did you mean 'alpha'?" in problem


def test_wrong_option_types_are_all_reported(minimal: dict[str, Any]) -> None:
    minimal["strategy"] = {"plugin": "lora", "options": {"r": "big", "dropout": 2.0}}
    minimal["backbone"]["options"] = {"hflip": 3}
    problems = check_recipe(load_recipe(minimal))
    assert len(problems) == 3, problems
    text = "\n".join(problems)
    for key in ("strategy.options.r", "strategy.options.dropout", "backbone.options.hflip"):
        assert key in text


def test_valid_options_pass(minimal: dict[str, Any]) -> None:
    minimal["strategy"] = {"plugin": "lora", "options": {"r": 4, "alpha": 8, "target_modules": ["conv2"]}}
    minimal["backbone"]["options"] = {"hflip": 0.0, "scale": [0.8, 1.0]}
    assert check_recipe(load_recipe(minimal)) == []


def test_validate_raises_with_option_problems(minimal: dict[str, Any]) -> None:
    minimal["strategy"] = {"plugin": "lora", "options": {"rank": 8}}
    with pytest.raises(RecipeError) as excinfo:
        validate(minimal)
    [problem] = excinfo.value.problems
    assert problem.startswith("recipe 'demo': strategy.options.rank")
