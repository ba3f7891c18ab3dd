"""Checks a recipe beyond its schema: plugins exist and fit together, files exist. Nothing is trained."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ._data import check_data_paths
from ._errors import RecipeError, UserError
from ._paths import output_dir_problems
from ._recipe import DataConfig, Recipe, explain, load_recipe, raw_recipe
from ._registry import registry
from ._run_files import MODEL_META, resolve_run_dir
from ._sweep_config import SearchParam
from ._sweep_space import space_problems
from ._tasks import task_problems
from ._trackers import tracker_problems
from ._weights import weights_folder_problems

__all__ = ["check_recipe", "validate", "validate_recipe"]


def check_recipe(recipe: Recipe) -> list[str]:
    """Every problem found in ``recipe``, one message each (empty when it is fine)."""
    problems = [
        *_plugin_problems("backbone", recipe.backbone.plugin, recipe.backbone.options),
        *_plugin_problems("strategy", recipe.strategy.plugin, recipe.strategy.options),
        *check_data_paths(recipe.data),
        *task_problems(recipe),
        *tracker_problems(recipe.train.trackers),
    ]
    problems.extend(_model_path_problems(recipe.backbone.model) or _backbone_model_problems(recipe))
    problems.extend(output_dir_problems("output_dir", recipe.output_path))
    if recipe.backbone.weights and not Path(recipe.backbone.weights).is_file():
        problems.append(f"backbone.weights: file {recipe.backbone.weights!r} not found")
    if recipe.backbone.init_from:
        problems.extend(_check_init_from(recipe.backbone.init_from, recipe.backbone.plugin))
    if recipe.train.soup and min(recipe.train.keep_checkpoints, recipe.train.epochs) < 2:
        problems.append(f"train.soup: {recipe.train.soup!r} averages the kept epoch checkpoints, and this run keeps "
                        f"{min(recipe.train.keep_checkpoints, recipe.train.epochs)}; set train.keep_checkpoints and "
                        f"train.epochs to 2 or more, or train.soup=null")
    problems.extend(space_problems(recipe))
    return problems


def _model_path_problems(model: str) -> list[str]:
    """A ``backbone.model`` written as a path (absolute, ``./``, ``../``, ``~``) is never a hub id: it must exist."""
    if not model.startswith(("/", "./", "../", "~")):
        return []
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            return [f"backbone.model: local model directory {model!r} holds no config.json; give the folder a "
                    f"model was saved to (save_pretrained: config.json + weights), or a hub id"]
        return weights_folder_problems("backbone.model", path)
    return [f"backbone.model: local model directory {model!r} not found; give the folder holding the model's "
            f"config.json, or a hub id such as 'bert-base-uncased'"]


def _backbone_model_problems(recipe: Recipe) -> list[str]:
    """The backbone's own check of ``backbone.model`` (``Backbone.model_problems``), when the plugin loads."""
    try:
        backbone = registry.get("backbone", recipe.backbone.plugin)(recipe.backbone, recipe.data)
    except UserError:  # reported by _plugin_problems
        return []
    return list(backbone.model_problems())


def _plugin_problems(kind: str, name: str, options: Any) -> list[str]:
    """An unknown or broken plugin, or options its ``options_model`` rejects."""
    try:
        plugin = registry.get(kind, name)
    except UserError as e:
        return [f"{kind}.plugin: {p}" for p in e.problems]
    declared = getattr(plugin, "options_model", None)
    if isinstance(options, dict) and options and declared is not None and not declared.model_fields:
        return [f"{kind}.options: {name!r} takes no options, got {sorted(options)}; remove {kind}.options "
                f"(see `tl list --verbose {name}`)"]
    return plugin.option_problems(options) if isinstance(options, dict) else []


def _check_init_from(value: str, plugin: str) -> list[str]:
    path = Path(value)
    if path.suffix in (".yaml", ".yml"):
        try:
            source = load_recipe(path)
        except RecipeError as e:
            return [f"backbone.init_from: source recipe {value!r} is invalid: {p}" for p in e.problems]
        problems = [f"backbone.init_from -> {p}" for p in check_recipe(source)]
        source_plugin = source.backbone.plugin
    else:
        if not path.exists():
            return [f"backbone.init_from: {value!r} not found; give a finished run's directory or a source recipe"]
        try:
            model_dir = resolve_run_dir(path)
        except UserError:
            return [f"backbone.init_from: {value!r} holds no finished run (no model/{MODEL_META}); finish that run first"]
        problems, source_plugin = [], json.loads((model_dir / MODEL_META).read_text())["backbone"]["plugin"]
    if source_plugin != plugin:
        problems.append(f"backbone.init_from: the source uses backbone {source_plugin!r}, this recipe "
                        f"{plugin!r}; a transfer keeps the architecture, so they must match")
    return problems


def _check_sections(data: dict[str, Any]) -> list[str]:
    """Plugin and file problems of the sections that pass the schema, when the whole recipe does not."""
    problems: list[str] = []
    for kind in ("backbone", "strategy"):
        section = data.get(kind)
        if isinstance(section, dict) and isinstance(section.get("plugin"), str):
            problems.extend(_plugin_problems(kind, section["plugin"], section.get("options")))
    with contextlib.suppress(ValidationError):  # an invalid data section is reported by the schema
        problems.extend(check_data_paths(DataConfig.model_validate(data.get("data"))))
    problems.extend(_check_space(data))
    return problems


def _check_space(data: dict[str, Any]) -> list[str]:
    """The space checks of the sweep's keys that pass the schema, when others (or other sections) do not."""
    sweep = data.get("sweep")
    space = sweep.get("space") if isinstance(sweep, dict) else None
    if not isinstance(sweep, dict) or not isinstance(space, dict):
        return []
    valid = {}
    for key, spec in space.items():
        with contextlib.suppress(ValidationError):
            valid[key] = SearchParam.model_validate(spec)
    try:
        recipe = Recipe.model_validate({**data, "sweep": {**sweep, "space": valid}})
    except ValidationError:
        return []  # other sections are broken too: the schema's messages say so
    return space_problems(recipe)


def validate(
    source: str | Path | dict[str, Any] | Recipe, overrides: list[str] | dict[str, Any] | None = None
) -> Recipe:
    """Load and check a recipe; raise with every problem at once.

    Raises:
        RecipeError: schema problems, plugin and file problems, all together.
    """
    data, origin = raw_recipe(source, overrides)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        problems = [f"{origin}: {msg}" for msg in explain(e, data)]
        problems += [f"{origin}: {p}" for p in _check_sections(data)]
        raise RecipeError(problems) from None
    problems = check_recipe(recipe)
    if problems:
        raise RecipeError([f"{origin}: {p}" for p in problems])
    return recipe


#: The public name (``tl_toolkit.validate_recipe``): what ``tl validate`` checks, from Python.
validate_recipe = validate
