"""Experiment trackers (``train.trackers``) through accelerate's tracking API.

accelerate silently drops a tracker whose package is missing; a recipe that
asks for one must fail at validation instead, naming the package to install.
Nothing here imports torch or accelerate, so ``tl validate`` stays cheap.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from ._errors import suggest

if TYPE_CHECKING:
    from ._recipe import Recipe

__all__ = ["TRACKER_PACKAGES", "tracker_config", "tracker_problems", "tracker_values"]

#: accelerate's tracker names -> (module that must import, package to pip install).
TRACKER_PACKAGES: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
    "comet_ml": ("comet_ml", "comet-ml"),
    "aim": ("aim", "aim"),
    "clearml": ("clearml", "clearml"),
    "dvclive": ("dvclive", "dvclive"),
    "swanlab": ("swanlab", "swanlab"),
    "trackio": ("trackio", "trackio"),
}


def tracker_problems(names: list[str]) -> list[str]:
    """One message per tracker name that accelerate does not know or whose package is not installed."""
    problems = []
    for name in names:
        if name not in TRACKER_PACKAGES:
            problems.append(f"train.trackers: unknown tracker {name!r}.{suggest(name, TRACKER_PACKAGES)} "
                            f"Choose from: {', '.join(TRACKER_PACKAGES)}")
        elif importlib.util.find_spec(TRACKER_PACKAGES[name][0]) is None:
            problems.append(f"train.trackers: {name!r} needs the {TRACKER_PACKAGES[name][1]!r} package; "
                            f"`pip install {TRACKER_PACKAGES[name][1]}` or remove it from train.trackers")
    return problems


def tracker_config(recipe: Recipe) -> dict[str, Any]:
    """The resolved recipe as flat ``section.key`` hyperparameters (trackers take scalars only)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, (bool, int, float, str)):
            flat[prefix] = value
        else:  # lists, None, empty mappings: as text, so every key is kept
            flat[prefix] = str(value)

    walk("", recipe.model_dump(mode="json"))
    return flat


def tracker_values(row: dict[str, Any]) -> dict[str, float]:
    """A ``metrics.jsonl`` row as tracker scalars: ``train/loss``, ``train/lr``, ``eval/accuracy``, ..."""
    if row.get("kind") == "eval":
        return {"train/epoch_loss": row["train_loss"], "epoch": row["epoch"],
                **{f"eval/{k}": v for k, v in row["eval"].items() if isinstance(v, (int, float))}}
    return {"train/loss": row["train_loss"], "train/lr": row["lr"], "epoch": row["epoch"]}
