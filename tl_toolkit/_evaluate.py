"""``tl eval``: a finished run's model on its eval data or an overridden one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._checkpoint import write_atomic
from ._errors import UserError
from ._pipeline import load_model_dir, resolve_run_dir
from ._recipe import load_recipe

__all__ = ["evaluate_run"]


#: What ``tl eval`` may override: the data to evaluate on, the seed of an eval split, the precision.
_EVAL_KEYS = ("data.", "seed=", "train.mixed_precision=")


def evaluate_run(run_dir: str | Path, overrides: list[str] | None = None, batch_size: int = 64) -> dict[str, Any]:
    """Evaluate a finished run; writes ``eval.json`` into the run directory and returns the metrics.

    Raises:
        UserError: no finished run there, or the eval data does not fit the model's labels.
    """
    from torch.utils.data import DataLoader

    from ._data import load_task_data
    from ._engine import evaluate, make_accelerator
    from ._tasks import make_task

    model_dir = resolve_run_dir(run_dir)
    out = model_dir.parent
    recipe_file = out / "recipe.yaml"
    if not recipe_file.is_file():
        raise UserError(f"{out}: recipe.yaml is missing; cannot tell which data the run used")
    fixed = [o for o in overrides or [] if not o.startswith(_EVAL_KEYS)]
    if fixed:  # the model is the run's: what built or trained it cannot change here
        raise UserError(f"{fixed[0].split('=')[0]}: tl eval evaluates the run's model as it was trained, so only "
                        f"data.* (and seed, train.mixed_precision) can be overridden; run the recipe again to "
                        f"change the rest")
    recipe = load_recipe(recipe_file, overrides or [])
    loaded = load_model_dir(model_dir)
    task = make_task(recipe.data, recipe.train)
    data = load_task_data(recipe.data, loaded.backbone.modality, recipe.seed, task)
    if data.label_names != loaded.label_names:
        raise UserError(
            f"data: the eval data's labels {data.label_names[:20]} differ from the model's {loaded.label_names[:20]}"
        )
    accelerator = make_accelerator(recipe)
    task.setup(loaded.label_names)
    eval_ds = task.prepare(loaded.backbone, data.eval, train=False)
    loader = DataLoader(eval_ds, batch_size=batch_size, collate_fn=loaded.backbone.collate)
    model, loader = accelerator.prepare(loaded.model, loader)
    metrics = evaluate(model, loader, loaded.backbone, accelerator, task)
    result = {"eval": metrics, "num_eval_examples": len(data.eval), "data": recipe.data.eval or "held-out split"}
    if accelerator.is_main_process:
        write_atomic(out / "eval.json", json.dumps(result, indent=2) + "\n")
    return result
