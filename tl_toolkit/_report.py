"""``report.md`` and its plots, written at the end of a run.

The report is what users keep and share: results and the transfer gain, the
task's own sections (a per-class table and a confusion matrix, per-entity
scores, ...), the learning curves as a PNG, the
per-epoch timings, the model's size, the source of a transfer, and the
resolved recipe with the command that reproduces it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._transfer_check import findings_lines, gain_text

if TYPE_CHECKING:
    from ._recipe import Recipe
    from ._task_api import TaskPlugin

__all__ = ["plot_confusion_matrix", "plot_learning_curves", "write_report"]

CURVES_PNG = "learning_curves.png"

# How the report names a metric; any other metric appears under its own key.
_LABELS = {"f1_macro": "macro-F1", "f1_micro": "micro-F1", "mse": "MSE"}


def _scores(metrics: dict[str, float]) -> list[str]:
    """The held-out metrics a report shows (accuracy and macro-F1, or the regression scores): all but the loss."""
    return [k for k in metrics if k != "loss"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(history: list[dict[str, Any]], path: Path, title: str) -> None:
    """Train loss per logged step and per epoch, eval loss, and eval accuracy/macro-F1 per epoch, side by side."""
    plt = _pyplot()
    train = [r for r in history if r.get("kind") == "train"]
    evals = [r for r in history if r.get("kind") == "eval"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    if train:
        ax_loss.plot([r["epoch"] for r in train], [r["train_loss"] for r in train], color="tab:blue", alpha=0.35,
                     label="train loss (logged steps)")
    if evals:
        epochs = [r["epoch"] for r in evals]
        ax_loss.plot(epochs, [r["train_loss"] for r in evals], "o-", color="tab:blue", label="train loss (epoch mean)")
        ax_loss.plot(epochs, [r["eval"]["loss"] for r in evals], "s-", color="tab:orange", label="eval loss")
        scores = _scores(evals[-1]["eval"])
        styles = (("o-", "tab:green"), ("s--", "tab:purple"), ("^:", "tab:red"))
        for name, (style, color) in zip(scores, styles, strict=False):
            ax_acc.plot(epochs, [r["eval"][name] for r in evals], style, color=color, label=_LABELS.get(name, name))
        if "accuracy" in scores:
            best = max(evals, key=lambda r: r["eval"]["accuracy"])
            ax_acc.annotate(f"{best['eval']['accuracy']:.3f}", (best["epoch"], best["eval"]["accuracy"]),
                            textcoords="offset points", xytext=(0, 7), ha="center", fontsize=9)
            ax_acc.set_ylim(0, 1.05)
        for ax in (ax_loss, ax_acc):
            ax.set_xlim(0, max(epochs) + 0.3)
            if max(epochs) <= 20:  # whole epochs on the axis, not 0.5 steps
                ax.set_xticks(range(max(epochs) + 1))
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="score on held-out data", title="Held-out metrics")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="best", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_confusion_matrix(labels: list[int], preds: list[int], names: list[str], path: Path, title: str) -> None:
    """Counts of true (rows) against predicted (columns) labels, with the class names on both axes."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    n = len(names)
    side = min(max(4.8, 0.6 * n + 2.5), 16)
    fig, ax = plt.subplots(figsize=(side, side * 0.85), dpi=120)
    ConfusionMatrixDisplay.from_predictions(
        labels, preds, labels=list(range(n)), display_labels=[_short(x) for x in names], ax=ax, cmap="Blues",
        include_values=n <= 30, xticks_rotation=45 if max(map(len, names), default=0) > 3 else "horizontal",
        colorbar=True,
    )
    ax.set(xlabel="predicted label", ylabel="true label", title=title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _short(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def write_report(
    out: Path,
    recipe: Recipe,
    summary: dict[str, Any],
    history: list[dict[str, Any]],
    outputs: dict[str, Any] | None = None,
    task: TaskPlugin | None = None,
) -> None:
    """Write ``report.md`` and ``learning_curves.png`` into ``out``, with the task's own sections.

    ``outputs`` holds the task's details of the final evaluation
    (:meth:`TaskPlugin.details`); the task turns them into its sections (a
    per-class table and a confusion matrix for classification).
    """
    identity = f"{recipe.name}: {summary['backbone']} + {summary['strategy']}"
    plot_learning_curves(history, out / CURVES_PNG, identity)
    lines = [f"# {recipe.name}", "", _intro(summary), ""]
    lines += _source_lines(summary.get("source"))
    lines += ["## Results", "", *_results_table(summary, task.metric_goals if task is not None else {}), ""]
    lines += _soup_lines(summary, history)
    if task is not None:
        lines += task.report_lines(outputs or {}, out, recipe.name)
    lines += ["## Learning curves", "", f"![learning curves]({CURVES_PNG})", ""]
    lines += _timing_lines(summary, history)
    lines += ["## Recipe", "", "Reproduce this run with `tl run --from-manifest "
              f"{out / 'model'}` (the manifest is in `model/README.md`).", "",
              "```yaml", recipe.to_yaml().rstrip(), "```", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")


def _intro(summary: dict[str, Any]) -> str:
    share = summary["trainable_params"] / max(summary["total_params"], 1)
    return (
        f"{summary['backbone']} fine-tuned with strategy **{summary['strategy']}** on "
        f"{summary['num_train_examples']} examples, evaluated on {summary['num_eval_examples']} held-out examples "
        f"({len(summary['label_names'])} labels). {summary['trainable_params']:,} of "
        f"{summary['total_params']:,} parameters trained ({share:.2%})."
    )


def _source_lines(source: str | None) -> list[str]:
    """Where a transfer run started: the source run's directory, task and score."""
    if not source:
        return []
    run_dir = Path(source).parent
    line = f"Transferred from the source run `{run_dir}`"
    summary_file = run_dir / "summary.json"
    if summary_file.is_file():
        src = json.loads(summary_file.read_text())
        scores = ", ".join(f"{_LABELS.get(k, k)} {v:.4f}" for k, v in src["eval"].items() if k != "loss")
        line += (f" ({src.get('name')}: {src.get('backbone')} + {src.get('strategy')}, "
                 f"{len(src.get('label_names', []))} labels, {scores} on its own task)")
    return [line + ".", ""]


def _soup_lines(summary: dict[str, Any], history: list[dict[str, Any]]) -> list[str]:
    """``train.soup``: which kept checkpoints the saved model averages, and the soup against the last one."""
    soup = summary.get("soup")
    if not soup:
        return []
    metric = soup.get("metric", "accuracy")
    evals = [row["eval"] for row in history if row["kind"] == "eval"]
    last = evals[-1].get(metric) if evals else None
    lines = ["## Model soup", "",
             f"The saved model is the **{soup['kind']}** soup (the average of the weights) of "
             f"{len(soup['ingredients'])} of the {len(soup['candidates'])} kept epoch checkpoints: "
             f"{', '.join(soup['ingredients'])}."]
    if last is not None and metric in summary["eval"]:
        lines[-1] += (f" Its {metric} is {summary['eval'][metric]:.4f}; the last checkpoint's "
                      f"({soup['candidates'][-1]}) was {last:.4f}.")
    lines.append("")
    if soup.get("steps"):  # greedy: the checkpoints in order of their own metric, each kept if the soup held
        lines += [f"| added | soup {metric} | kept |", "|---|---:|---|"]
        lines += [f"| {step['add']} | {step[metric]:.4f} | {'yes' if step['kept'] else 'no'} |"
                  for step in soup["steps"]]
        lines.append("")
    return lines


def _results_table(summary: dict[str, Any], goals: dict[str, str]) -> list[str]:
    ev = summary["eval"]
    lines = [
        f"| run | {' | '.join(_LABELS.get(k, k) for k in _scores(ev))} | eval loss | trainable params | total params "
        f"| train seconds |",
        "| --- |" + " ---: |" * (len(_scores(ev)) + 4),
        _row("this run", ev, summary),
    ]
    for name, base in summary.get("baselines", {}).items():
        lines.append(_row(f"baseline: {name}", base["eval"], base))
    for name, gain in summary.get("transfer_gain", {}).items():
        lines += ["", f"**Transfer gain over {name}:** {gain_text(gain, goals, _LABELS)}."]
    if summary.get("transfer_check"):  # a gain at or below zero: what the run found, what to try
        lines += ["", *findings_lines(summary["transfer_check"], markdown=True)[:-1]]
    return lines


def _timing_lines(summary: dict[str, Any], history: list[dict[str, Any]]) -> list[str]:
    evals = [r for r in history if r.get("kind") == "eval"]
    lines = ["## Timings", "", f"Training took {summary['train_seconds']:.1f} s over {len(evals)} epochs.", ""]
    if evals:
        scores = _scores(evals[-1]["eval"])
        lines += [f"| epoch | train loss | eval loss | {' | '.join(_LABELS.get(k, k) for k in scores)} "
                  f"| seconds (train + eval) |",
                  "| ---: |" + " ---: |" * (len(scores) + 3)]
        lines += [_epoch_row(r, scores) for r in evals]
        lines.append("")
    return lines


def _epoch_row(row: dict[str, Any], scores: list[str]) -> str:
    values = " | ".join(f"{row['eval'][k]:.4f}" for k in scores)
    return (f"| {row['epoch']} | {row['train_loss']:.4f} | {row['eval']['loss']:.4f} | {values} | "
            f"{row.get('seconds', float('nan')):.1f} |")


def _row(name: str, ev: dict[str, float], s: dict[str, Any]) -> str:
    return (
        f"| {name} | {' | '.join(f'{ev[k]:.4f}' for k in _scores(ev))} | {ev['loss']:.4f} | "
        f"{s['trainable_params']:,} | {s['total_params']:,} | {s['train_seconds']:.1f} |"
    )
