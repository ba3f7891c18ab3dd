"""The run's task plugin (``data.task``), and the checks that pair it with the rest of a recipe."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import UserError, suggest
from ._registry import registry

if TYPE_CHECKING:
    from ._recipe import DataConfig, Recipe, TrainConfig
    from ._task_api import TaskPlugin

__all__ = ["make_task", "task_problems"]


def make_task(data: DataConfig, train: TrainConfig | None = None) -> TaskPlugin:
    """A fresh instance of the task plugin ``data.task`` names (labels not set up yet).

    Raises:
        PluginError: the task is unknown or failed to load.
    """
    return registry.get("task", data.task)(data, train)


def task_problems(recipe: Recipe) -> list[str]:
    """The task is registered, its options are valid, the backbone builds its head, ``train.best_metric`` and a
    sweep's ``sweep.metric`` are ones it reports."""
    try:
        task_cls: Any = registry.get("task", recipe.data.task)
    except UserError as e:
        return [f"data.task: {p}" for p in e.problems]
    problems = task_cls.option_problems(recipe.data.task_options)
    try:
        backbone: Any = registry.get("backbone", recipe.backbone.plugin)
    except UserError:
        backbone = None  # reported by the backbone check
    if backbone is not None and task_cls.head not in backbone.tasks:
        problems.append(
            f"data.task: backbone {recipe.backbone.plugin!r} cannot serve task {recipe.data.task!r}: the task "
            f"needs a {task_cls.head!r} head and the backbone builds {', '.join(backbone.tasks)} heads; pick "
            f"another task or a backbone that supports it")
    known = [*task_cls.metric_goals, "loss"]
    searched = recipe.sweep.metric if recipe.sweep.space else None  # a sweep's metric matters once it has a space
    for key, metric in (("train.best_metric", recipe.train.best_metric), ("sweep.metric", searched)):
        if metric is not None and metric not in known:
            problems.append(f"{key}: task {recipe.data.task!r} reports no metric {metric!r}."
                            f"{suggest(metric, known)} Choose one of {', '.join(known)}")
    return problems
