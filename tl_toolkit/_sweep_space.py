"""The search space of ``tl sweep``: checking it before any trial, and sampling a trial from it.

Optuna samples the values (define-by-run, so ``when`` conditions are plain
``if`` statements); what Optuna cannot know is whether a value makes a valid
recipe. :func:`space_problems` builds the recipe at both ends of every range
and with every categorical choice, and puts each through the recipe schema and
the plugin's ``options_model``, so a bad space fails in ``tl validate``, not in
trial seven.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ._errors import UserError, suggest
from ._recipe import Recipe, apply_overrides, explain, nested
from ._registry import registry
from ._sweep_config import SearchParam

if TYPE_CHECKING:
    import optuna

__all__ = ["ordered_space", "sample", "space_problems", "trial_recipe"]

_PLAIN = (str, int, float, bool, type(None))


def _recipe_key_problem(key: str) -> str | None:
    """Why ``key`` names no recipe value (None when it does). Keys under a plugin's ``options`` are the plugin's."""
    model: Any = Recipe
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            where = ".".join(parts[:i]) or "the recipe"
            return (f"{key!r} is not a recipe key:{suggest(part, fields) or ''} valid keys in {where}: "
                    f"{', '.join(fields)}")
        if part == "options" and i < len(parts) - 1:
            return None  # a plugin option: checked against the plugin's options_model with each value
        annotation = fields[part].annotation
        if i < len(parts) - 1 and not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return f"{key!r} is not a recipe key: {'.'.join(parts[: i + 1])} holds a value, not a section"
        model = annotation
    return None


def _lookup(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def ordered_space(space: dict[str, SearchParam]) -> list[tuple[str, SearchParam]]:
    """The keys in the order a trial samples them: every key after the space keys its ``when`` names."""
    done: list[tuple[str, SearchParam]] = []
    pending = dict(space)
    while pending:
        ready = [k for k, p in pending.items() if not any(c in pending and c != k for c in p.when)]
        if not ready:  # a cycle of conditions: reported by space_problems; keep the written order here
            ready = list(pending)
        for key in ready:
            done.append((key, pending.pop(key)))
    return done


def trial_recipe(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The base recipe (a plain mapping) with a trial's dotted values applied."""
    from ._recipe import raw_recipe

    data, _ = raw_recipe(base, nested(params))  # switching a plugin drops the old plugin's options
    return data


def _value_problems(base: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """What the schema and the plugins say about the base recipe with ``params`` applied."""
    data = trial_recipe(base, params)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        return explain(e, data)
    problems = []
    for kind in ("backbone", "strategy"):
        section = getattr(recipe, kind)
        try:
            plugin = registry.get(kind, section.plugin)
        except UserError as e:
            problems += [f"{kind}.plugin: {p}" for p in e.problems]
            continue
        problems += plugin.option_problems(section.options)
    return problems


def space_problems(recipe: Recipe) -> list[str]:
    """Every problem of ``recipe.sweep.space``, each naming its key (empty when the space is sound)."""
    space = recipe.sweep.space
    base = recipe.model_dump(mode="json")
    problems: list[str] = []
    for key, param in space.items():
        where = f"sweep.space.{key}"
        problem = _recipe_key_problem(key)
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        if key in ("name", "output_dir") or key.startswith("sweep."):
            problems.append(f"{where}: the sweep sets this key itself; search model, data, strategy or train keys")
            continue
        bad = [c for c in param.choices or [] if not isinstance(c, _PLAIN)]
        if bad:
            problems.append(f"{where}: choice {bad[0]!r} is not a plain value; Optuna stores strings, numbers, "
                            f"booleans and null, so give one of those")
            continue
        conditions = dict(param.when)
        for cond_key, cond_value in conditions.items():
            if cond_key == key:
                problems.append(f"{where}: 'when' names the key itself; name another key")
            elif cond_key in space:
                cond = space[cond_key]
                if cond.type == "categorical" and cond_value not in (cond.choices or []):
                    problems.append(f"{where}: when {cond_key} is {cond_value!r}, but that is not among "
                                    f"{cond_key}'s choices {cond.choices}; the key would never be searched")
                if key in cond.when:
                    problems.append(f"{where}: its 'when' and {cond_key}'s name each other; one must come first")
            else:
                cond_problem = _recipe_key_problem(cond_key)
                if cond_problem:
                    problems.append(f"{where}: when: {cond_problem}")
        for value in param.corners():
            # Other space keys stay at the recipe's values, except those this key's condition fixes.
            found = _value_problems(base, {**conditions, key: value})
            if found:
                problems.append(f"{where}: the value {value!r} would make an invalid recipe: {found[0]}")
                break
    return problems


def sample(trial: optuna.Trial, space: dict[str, SearchParam], base: dict[str, Any]) -> dict[str, Any]:
    """Draw one trial's values; a key whose ``when`` does not hold in this trial is left out."""
    params: dict[str, Any] = {}
    for key, param in ordered_space(space):
        if any(params.get(k, _lookup(base, k)) != v for k, v in param.when.items()):
            continue
        if param.type == "categorical":
            params[key] = trial.suggest_categorical(key, param.choices or [])
        elif param.type == "int":
            step = int(param.step) if param.step else 1
            params[key] = trial.suggest_int(key, int(param.low or 0), int(param.high or 0), step=step, log=param.log)
        else:
            params[key] = trial.suggest_float(key, float(param.low or 0.0), float(param.high or 0.0),
                                              step=param.step, log=param.log)
    return params


def base_recipe(recipe: Recipe) -> dict[str, Any]:
    """The recipe a trial starts from: the sweep's own recipe without its baselines (a trial is one run)."""
    return apply_overrides(recipe.model_dump(mode="json"), {"baselines": []})
