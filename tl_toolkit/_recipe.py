"""The recipe schema: one YAML file describes a run from data to report.

The pydantic models below mirror the YAML one to one. Every default lives on
a field here; unknown keys are errors that suggest the nearest valid key, and
all problems of a recipe are reported at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._errors import RecipeError, suggest
from ._sweep_config import SweepConfig

__all__ = [
    "BackboneConfig",
    "DataConfig",
    "Recipe",
    "StrategyConfig",
    "TrainConfig",
    "apply_overrides",
    "load_recipe",
    "parse_overrides",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class BackboneConfig(_Section):
    """The pretrained model the run starts from."""

    plugin: str = Field(description="entry-point name in group tl_toolkit.backbones: bert | resnet | ...")
    model: str = Field(description="hub id, local directory, or architecture name")
    pretrained: bool = Field(True, description="false: same architecture, random initialisation (scratch)")
    init_from: str | None = Field(
        None, description="a previous run's directory, or a source recipe (trained first if needed)"
    )
    weights: str | None = Field(None, description="local weights file (.safetensors or .pth) to start from")
    options: dict[str, Any] = Field(default_factory=dict, description="backbone-specific options")


class DataConfig(_Section):
    """Where the examples come from and which columns hold what."""

    format: Literal["hf", "csv", "json", "parquet", "imagefolder", "digits", "conll"] = Field(
        description="hf | csv | json | parquet | imagefolder | digits | conll (word ... tag columns)"
    )
    train: str | None = Field(None, description="file, folder, or split name (hf, digits)")
    eval: str | None = Field(None, description="file, folder, or split name; null: hold out eval_fraction")
    name: str | None = Field(None, description="hf: the dataset id or local dataset directory")
    config: str | None = Field(None, description="hf: the dataset configuration")
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    image_column: str = "image"
    image_size: int | None = Field(None, ge=8, description="resize images to this side; null: backbone default")
    max_length: int = Field(128, ge=8, description="text: tokens per example, longer ones are truncated")
    delimiter: str | None = Field(None, description="csv: field separator; null: tab for .tsv, comma otherwise")
    classes: list[str] | None = Field(None, description="keep only examples of these labels (as written)")
    max_train_per_class: int | None = Field(None, ge=1, description="cap on training examples per class")
    max_train_samples: int | None = Field(None, ge=1)
    max_eval_samples: int | None = Field(None, ge=1)
    eval_fraction: float = Field(0.2, gt=0, lt=1, description="held out from train when eval is null")
    task: str = Field(
        "classification", description="entry-point name in group tl_toolkit.tasks: classification | multi_label | "
        "regression | token_classification | ..."
    )
    task_options: dict[str, Any] = Field(default_factory=dict, description="task-specific options")
    label_separator: str = Field(",", min_length=1, description="multi_label: separates the labels in a text cell")
    threshold: float | dict[str, float] = Field(
        0.5, description="multi_label: probability that predicts a label; one for all, or {label: threshold}"
    )

    @model_validator(mode="before")
    @classmethod
    def _classes_as_strings(cls, values: Any) -> Any:
        # Labels are compared as written, so `classes: [5, 6]` means the labels 5 and 6.
        if isinstance(values, dict) and isinstance(values.get("classes"), list):
            values = {**values, "classes": [str(c) for c in values["classes"]]}
        return values


class StrategyConfig(_Section):
    """How the pretrained model is adapted: what trains."""

    plugin: str = Field("full", description="entry-point name in group tl_toolkit.strategies")
    options: dict[str, Any] = Field(default_factory=dict, description="strategy-specific options")


class TrainConfig(_Section):
    """The optimisation loop, run on accelerate."""

    epochs: int = Field(3, ge=1)
    batch_size: int = Field(32, ge=1, description="per device")
    eval_batch_size: int | None = Field(None, ge=1, description="null: twice batch_size")
    lr: float = Field(2.0e-5, gt=0)
    optimizer: Literal["adamw", "sgd"] = Field(
        "adamw", description="adamw: AdamW; sgd: SGD with momentum 0.9 (weight_decay as L2), the classic ResNet rule"
    )
    weight_decay: float = Field(0.01, ge=0)
    backbone_lr_ratio: float = Field(
        1.0, gt=0, description="learning rate of transferred backbone weights (init_from, weights, pretrained) "
        "relative to lr, which the new head and adapters keep; 1: one rate for the whole model"
    )
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    grad_accum_steps: int = Field(1, ge=1, description="accumulate gradients over this many batches")
    max_grad_norm: float | None = Field(1.0, gt=0, description="clip gradients to this norm; null: off")
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = Field(
        "auto", description="auto: bf16 training steps on a CPU with native bf16 where the backbone allows, "
        "else full precision; no | fp16 | bf16: handed to accelerate"
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    log_every_steps: int = Field(10, ge=1)
    keep_checkpoints: int = Field(1, ge=1, description="newest checkpoints kept for --resume")
    checkpoint_every_steps: int | None = Field(
        None, ge=1, description="also checkpoint every this many optimizer steps; null: at epoch ends only"
    )
    best_metric: str | None = Field(
        None, description="also keep the epoch checkpoint with the best value of this eval metric (one the task "
        "reports, e.g. accuracy, f1_macro, f1; or loss)"
    )
    skip_nonfinite: bool = Field(False, description="skip a step whose loss is NaN or inf instead of stopping")
    compile: bool = Field(False, description="torch.compile the model (through accelerate's dynamo plugin)")
    gradient_checkpointing: bool | Literal["auto"] = Field(
        "auto",
        description="recompute activations in the backward pass: less memory, more compute; "
        "auto: as the strategy prefers (lora: on)",
    )
    feature_cache: Literal["auto", "off"] = Field(
        "auto", description="auto: a frozen backbone's features are computed once and cached on disk"
    )
    trackers: list[str] = Field(
        default_factory=list, description="accelerate trackers to log to: tensorboard | wandb | mlflow | ..."
    )
    class_weights: Literal["auto"] | list[float] | None = Field(
        None, description="loss weight per class (label order); auto: inverse frequency; null: equal"
    )
    group_by_length: bool = Field(True, description="batch examples of similar length (text: less padding)")
    length_group_batches: int | None = Field(
        None, ge=1, description="batches per length group (null: the task's default, 50 for sentence tasks)"
    )
    cpu_dropout: bool = Field(
        True, description="tl_toolkit's fast dropout on the CPU (same distribution); false: PyTorch's own"
    )
    padding_free: bool | None = Field(
        None, description="train on batches without padding where the backbone can (null: the task's default)"
    )
    ema: float | None = Field(
        None, gt=0, lt=1, description="moving average of the weights for eval and the saved model (e.g. 0.999)"
    )
    soup: Literal["uniform", "greedy"] | None = Field(
        None, description="average the kept epoch checkpoints into the saved model; greedy: only those that help"
    )

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        # YAML reads an unquoted `no` as false; the contract's value is the string "no".
        return "no" if value is False else value

    @field_validator("feature_cache", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML reads an unquoted `off` as false.
        return "off" if value is False else value


class CompareConfig(_Section):
    """``tl compare``: the same recipe under several strategies, on identical splits and seeds."""

    strategies: list[str] = Field(
        default_factory=lambda: ["head-only", "lora", "full", "scratch"],
        description="strategy plugins to run; scratch: the same architecture from random weights",
    )
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="strategy.options per strategy name, e.g. {lora: {r: 4}}"
    )
    train_sizes: list[int | Literal["all"]] = Field(
        default_factory=list, description="sample efficiency: training examples per class to draw (all: every "
        "example); each strategy runs at each size and seed. Empty: one run per strategy on the recipe's data"
    )
    seeds: list[int] = Field(default_factory=list, description="with train_sizes: the seeds; empty: the recipe's seed")
    train: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="train settings per strategy over the train section, e.g. {lora: {lr: 5.0e-4}}"
    )

    @field_validator("train_sizes")
    @classmethod
    def _positive_sizes(cls, sizes: list[int | str]) -> list[int | str]:
        if any(isinstance(s, int) and s < 1 for s in sizes):
            raise ValueError("sizes are examples per class: positive whole numbers or 'all'")
        return sizes


class Recipe(_Section):
    """A whole run: data -> model -> strategy -> train -> evaluate -> save -> report."""

    name: str = Field(min_length=1)
    seed: int = 0
    output_dir: str | None = Field(None, description="null: runs/<name>")
    backbone: BackboneConfig
    data: DataConfig
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    baselines: list[Literal["scratch"]] = Field(
        default_factory=list, description="also train these baselines and report the transfer gain"
    )
    compare: CompareConfig = Field(default_factory=CompareConfig, description="what `tl compare` runs")
    sweep: SweepConfig = Field(default_factory=SweepConfig, description="what `tl sweep` searches")

    @model_validator(mode="after")
    def _default_output_dir(self) -> Recipe:
        if self.output_dir is None:
            self.output_dir = f"runs/{self.name}"
        return self

    @property
    def output_path(self) -> Path:
        """``output_dir`` as a path (always set: it defaults to ``runs/<name>``)."""
        assert self.output_dir is not None  # filled in by _default_output_dir
        return Path(self.output_dir)

    def to_yaml(self) -> str:
        """The fully resolved recipe as YAML."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# -- loading ---------------------------------------------------------------


_SPACE = "sweep.space."


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn ``["train.epochs=1", ...]`` into a nested dict; values are parsed as YAML.

    Raises:
        RecipeError: an item is not ``KEY=VALUE``.
    """
    nested: dict[str, Any] = {}
    problems = []
    for item in items:
        if not isinstance(item, str):
            problems.append(f"override {item!r}: expected a KEY=VALUE string, e.g. 'train.epochs=1'")
            continue
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append(f"override {item!r}: expected KEY=VALUE with a dotted key, e.g. train.epochs=1")
            continue
        try:
            value = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError:
            value = raw
        node = nested
        *parents, leaf = key.split(".")
        if key.startswith(_SPACE) and len(key) > len(_SPACE):  # a space key is itself dotted
            parents, leaf = ["sweep", "space"], key[len(_SPACE):]
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                problems.append(f"override {item!r}: {part!r} is set to a value and cannot have sub-keys")
                break
        else:
            node[leaf] = value
    if problems:
        raise RecipeError(problems)
    return nested


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"train.lr": 1e-4}`` as ``{"train": {"lr": 1e-4}}``: dotted keys to the recipe's nesting."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        for part in reversed(str(key).split(".")):
            value = {part: value}
        out = apply_overrides(out, value)  # "train.lr" beside "train": {...} merge instead of replacing each other
    return out


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``data``."""
    out = dict(data)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = apply_overrides(out[key], value)
        else:
            out[key] = value
    return out


def _drop_other_plugin_options(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Options belong to their plugin: an override that switches ``strategy.plugin`` (or ``backbone.plugin``)
    starts the new plugin from its defaults plus exactly the options given with it, so ``strategy.plugin=full``
    works on a LoRA recipe and ``strategy.plugin=ia3 strategy.options.feedforward_modules=[...]`` gets no ``r``."""
    out = dict(data)
    for section in ("strategy", "backbone"):
        new, old = overrides.get(section), data.get(section)
        if not (isinstance(new, dict) and isinstance(old, dict)):
            continue
        if "plugin" in new and new["plugin"] != old.get("plugin"):
            out[section] = {k: v for k, v in old.items() if k != "options"}
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a recipe file as a mapping.

    Raises:
        RecipeError: the file is missing, is not valid YAML, or is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        hint = " (it is a directory)" if path.is_dir() else ""
        raise RecipeError(f"{path}: recipe file not found{hint}; give the path of a .yaml recipe")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecipeError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not a UTF-8 text file; save the recipe as UTF-8") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections (name, backbone, data, ...)")
    return data


def load_recipe(
    source: str | Path | dict[str, Any] | Recipe,
    overrides: list[str] | dict[str, Any] | None = None,
) -> Recipe:
    """Build a :class:`Recipe` from a file, a dict or a recipe, with overrides applied.

    Raises:
        RecipeError: with every schema problem, one message per problem.
    """
    data, origin = raw_recipe(source, overrides)
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise RecipeError([f"{origin}: {msg}" for msg in explain(e, data)]) from None


def raw_recipe(
    source: str | Path | dict[str, Any] | Recipe,
    overrides: list[str] | dict[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """The recipe as a plain mapping, overrides applied, and a name for it in messages.

    Raises:
        RecipeError: the file cannot be read, or an override is malformed.
    """
    if isinstance(source, Recipe):
        data = source.model_dump(mode="json")
        origin = f"recipe {source.name!r}"
    elif isinstance(source, dict):
        data = dict(source)
        origin = f"recipe {data['name']!r}" if isinstance(data.get("name"), str) else "recipe"
    elif isinstance(source, (str, Path)):
        data, origin = read_yaml(source), str(source)
    else:
        raise RecipeError([f"recipe: got {type(source).__name__} {source!r}; give a recipe file's path, a dict of "
                           f"its sections, or a Recipe"])
    if isinstance(overrides, (str, bytes)):
        raise RecipeError([f"overrides: got the string {overrides!r}; give a list of KEY=VALUE strings, "
                           f"e.g. ['train.epochs=1'], or a dict such as {{'train.epochs': 1}}"])
    if overrides:
        extra = parse_overrides(list(overrides)) if not isinstance(overrides, dict) else nested(overrides)
        data = apply_overrides(_drop_other_plugin_options(data, extra), extra)
    return data, origin


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Recipe
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def _union_branch(loc: tuple[Any, ...]) -> bool:
    """Whether ``loc`` ends in the tag pydantic gives one member of a union field (``bool``, ``literal['auto']``)."""
    if not (len(loc) >= 2 and isinstance(loc[-1], str) and not _fields_at(loc[:-1])
            and loc[-2] in _fields_at(loc[:-2])):
        return False
    model: Any = Recipe
    for part in loc[:-2]:
        model = model.model_fields[part].annotation
    # A mapping's keys (sweep.space's dotted keys) sit where a union's member tags would.
    return get_origin(model.model_fields[loc[-2]].annotation) is not dict


def explain(error: ValidationError, data: dict[str, Any]) -> list[str]:
    messages = []
    unions: dict[tuple[Any, ...], list[Any]] = {}  # a union field's key -> the error of each member it failed
    for err in error.errors():
        if _union_branch(err["loc"]):
            unions.setdefault(err["loc"][:-1], []).append(err)
            continue
        loc = err["loc"]
        key = ".".join(str(p) for p in loc) or "<top>"
        kind = err["type"]
        if kind == "extra_forbidden":
            parent, leaf = loc[:-1], str(loc[-1])
            valid = _fields_at(parent)
            where = ".".join(str(p) for p in parent)
            messages.append(
                f"unknown key {key!r}.{suggest(leaf, valid)} Valid keys"
                f"{' in ' + repr(where) if where else ''}: {', '.join(valid)}"
            )
        elif kind == "missing":
            messages.append(f"{key}: required key is missing; add it to the recipe")
        elif kind in ("literal_error", "enum"):
            got = err.get("input")
            messages.append(f"{key}: {got!r} is not allowed; {err['msg'].replace('Input should be', 'choose')}")
        elif kind == "model_type" or kind == "dict_type":
            messages.append(f"{key}: expected a section of keys, got {err.get('input')!r}")
        elif kind == "value_error":  # a model's own check: its message says what is wrong
            messages.append(f"{key}: {err['msg'].removeprefix('Value error, ')}")
        else:
            messages.append(f"{key}: {err['msg']}, got {err.get('input')!r}")
    for loc, errs in unions.items():
        wanted = " or ".join(e["msg"].split(",")[0].removeprefix("Input should be ") for e in errs)
        messages.append(f"{'.'.join(str(p) for p in loc)}: {errs[0].get('input')!r} is not allowed; give {wanted}")
    return messages
