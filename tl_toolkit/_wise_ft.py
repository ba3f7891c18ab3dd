"""``tl wise-ft``: interpolate a finished run's backbone between its starting and fine-tuned weights (WiSE-FT).

For each ``alpha``, every backbone tensor becomes ``(1 - alpha) * start + alpha * fine_tuned``
(``torch.lerp``, so alpha 1 is the fine-tuned tensor bit for bit); the head stays the
fine-tuned one, as the starting model's head was random. The starting weights are
rebuilt as the run built them: the pretrained model, or the ``init_from`` source run's.
Each alpha is evaluated on the run's eval data and, with ``data.eval=...`` overrides,
on a second (shifted) set; the curve goes to ``<run>/wise_ft/wise_ft.{json,md,png}``
and the chosen alpha's model is saved as a run directory ``<run>/wise_ft/alpha-<a>/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import UserError
from ._recipe import load_recipe

if TYPE_CHECKING:
    from torch import nn

__all__ = ["wise_ft"]


def _starting_model(recipe: Any, label_names: list[str], head_kind: str) -> nn.Module:
    """The run's model before training, as ``tl run`` built it (head random: it is never used)."""
    from accelerate.utils import set_seed

    from ._pipeline import _load_source, _resolve_source
    from ._plugin_api import Task
    from ._registry import registry

    backbone = registry.get("backbone", recipe.backbone.plugin)(recipe.backbone, recipe.data)
    source = _load_source(_resolve_source(recipe, quiet=True), recipe) if recipe.backbone.init_from else None
    set_seed(recipe.seed)
    return backbone.build(Task(label_names, head_kind), source)


def _interpolate(start: dict[str, Any], tuned: dict[str, Any], alpha: float, head: tuple[str, ...]) -> dict:
    import torch

    out = {}
    for key, value in tuned.items():
        in_head = any(key == h or key.startswith(h + ".") for h in head)
        if in_head or not value.is_floating_point():
            out[key] = value
        else:
            out[key] = torch.lerp(start[key].to(value.dtype), value, alpha)
    return out


def wise_ft(run_dir: str | Path, alphas: list[float], overrides: list[str] | None = None,
            save_alpha: float | None = None) -> dict[str, Any]:
    """Evaluate the WiSE-FT curve of a finished run and save one alpha's model; returns the curve.

    Args:
        run_dir: a finished run's output_dir.
        alphas: interpolation weights in [0, 1]; 0 is the starting model's backbone, 1 the run's.
        overrides: recipe overrides naming a second eval set (e.g. ``data.eval=shifted.csv``).
        save_alpha: the alpha whose model to save; default the best on the run's eval data.

    Raises:
        UserError: not a finished run, an alpha outside [0, 1], or a starting model that does not
            match the fine-tuned one.
    """
    from torch.utils.data import DataLoader

    from ._data import load_task_data
    from ._engine import evaluate, make_accelerator
    from ._pipeline import _save_model, load_model_dir, resolve_run_dir
    from ._plugin_api import Task
    from ._tasks import make_task

    bad = [a for a in alphas if not 0.0 <= a <= 1.0]
    if bad or not alphas:
        raise UserError(f"--alphas: give numbers between 0 and 1, e.g. 0,0.25,0.5,0.75,1; got {alphas}")
    if save_alpha is not None and save_alpha not in alphas:  # a saved model is one the curve measured
        raise UserError(f"--save: {save_alpha:g} is not one of --alphas ({', '.join(f'{a:g}' for a in alphas)}); "
                        f"save an alpha the curve evaluates, or add it to --alphas")
    model_dir = resolve_run_dir(run_dir)
    out = model_dir.parent
    recipe = load_recipe(out / "recipe.yaml")
    loaded = load_model_dir(model_dir, merge=True)
    task = make_task(recipe.data, recipe.train)
    task.setup(loaded.label_names)
    tuned = {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}
    start = _starting_model(recipe, loaded.label_names, task.head).state_dict()
    missing = [k for k in tuned if k not in start or start[k].shape != tuned[k].shape]
    if missing:
        raise UserError(f"{out}: the rebuilt starting model does not match the fine-tuned one ({missing[:3]}); "
                        f"was the run's backbone.model or init_from changed since?")
    head = tuple(loaded.backbone.head_names(loaded.model))

    sets = {"eval": recipe}
    if overrides:
        sets["shifted"] = load_recipe(out / "recipe.yaml", overrides)
    accelerator = make_accelerator(recipe)
    loaders = {}
    for name, r in sets.items():
        data = load_task_data(r.data, loaded.backbone.modality, r.seed, make_task(r.data, r.train))
        if data.label_names != loaded.label_names:
            raise UserError(f"data: the {name} data's labels {data.label_names[:20]} differ from the model's "
                            f"{loaded.label_names[:20]}")
        ds = task.prepare(loaded.backbone, data.eval, train=False)
        size = recipe.train.eval_batch_size or 2 * recipe.train.batch_size  # the run's batches: same sums
        loaders[name] = accelerator.prepare(DataLoader(ds, batch_size=size, collate_fn=loaded.backbone.collate))
    model = accelerator.prepare(loaded.model)
    metric = recipe.train.best_metric or next(iter(task.metric_goals), "loss")
    lower_is_better = metric == "loss" or task.metric_goals.get(metric) == "min"

    rows = []
    for alpha in alphas:
        accelerator.unwrap_model(model).load_state_dict(_interpolate(start, tuned, alpha, head))
        row: dict[str, Any] = {"alpha": alpha}
        for name, loader in loaders.items():
            row[name] = evaluate(model, loader, loaded.backbone, accelerator, task)
        rows.append(row)
    best = (min if lower_is_better else max)(rows, key=lambda r: r["eval"][metric])
    chosen = best["alpha"] if save_alpha is None else save_alpha
    target = out / "wise_ft"
    target.mkdir(exist_ok=True)
    run_out = target / f"alpha-{chosen:g}"
    model_plain = accelerator.unwrap_model(model)
    model_plain.load_state_dict(_interpolate(start, tuned, chosen, head))
    saved = recipe.model_copy(update={"strategy": recipe.strategy.model_copy(update={"plugin": "full",
                                                                                     "options": {}})})
    from ._registry import registry

    run_out.mkdir(exist_ok=True)
    _save_model(model_plain, loaded.backbone, registry.get("strategy", "full")({}), saved,
                Task(loaded.label_names, task.head), run_out)
    (run_out / "recipe.yaml").write_text(saved.to_yaml())
    chosen_row = next((r for r in rows if r["alpha"] == chosen), None)
    (run_out / "summary.json").write_text(json.dumps({
        "name": f"{recipe.name}-wise-ft-{chosen:g}", "wise_ft_alpha": chosen, "source_run": str(out),
        "eval": chosen_row["eval"] if chosen_row else None, "label_names": loaded.label_names}, indent=2) + "\n")
    result = {"run": str(out), "metric": metric, "summary_eval": _summary_eval(out), "curve": rows,
              "chosen_alpha": chosen, "saved": str(run_out)}
    (target / "wise_ft.json").write_text(json.dumps(result, indent=2) + "\n")
    (target / "wise_ft.md").write_text(_markdown(result, list(loaders)))
    _plot(result, list(loaders), target / "wise_ft.png")
    return result


def _summary_eval(out: Path) -> dict[str, float] | None:
    path = out / "summary.json"
    return json.loads(path.read_text()).get("eval") if path.is_file() else None


def _markdown(result: dict[str, Any], sets: list[str]) -> str:
    metric = result["metric"]
    lines = [f"# WiSE-FT of {result['run']}", "",
             "alpha 0: the starting backbone; 1: the fine-tuned one (the head is the fine-tuned head throughout).", "",
             "| alpha | " + " | ".join(f"{s} {metric}" for s in sets) + " |",
             "| --- | " + " | ".join("---" for _ in sets) + " |"]
    for row in result["curve"]:
        lines.append(f"| {row['alpha']:g} | " + " | ".join(f"{row[s][metric]:.4f}" for s in sets) + " |")
    lines += ["", f"Saved alpha {result['chosen_alpha']:g}: `{result['saved']}`."]
    if result["summary_eval"]:
        lines.append(f"The run's own eval {metric}: {result['summary_eval'][metric]:.4f}.")
    return "\n".join(lines) + "\n"


def _plot(result: dict[str, Any], sets: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = result["metric"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    alphas = [r["alpha"] for r in result["curve"]]
    for name in sets:
        ax.plot(alphas, [r[name][metric] for r in result["curve"]], marker="o", label=name)
    ax.set_xlabel("alpha (0: starting weights, 1: fine-tuned)")
    ax.set_ylabel(metric)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
