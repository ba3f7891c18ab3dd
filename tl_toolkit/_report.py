"""``report.md`` and its learning-curve plot, written at the end of a run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._recipe import Recipe

__all__ = ["plot_learning_curves", "write_report"]

# How the report names a metric; any other metric appears under its own key.
_LABELS = {"f1_macro": "macro-F1", "f1_micro": "micro-F1", "mse": "MSE"}


def _scores(metrics: dict[str, float]) -> list[str]:
    """The held-out metrics a report shows (accuracy and macro-F1, or the regression scores): all but the loss."""
    return [k for k in metrics if k != "loss"]


def plot_learning_curves(history: list[dict[str, Any]], path: Path, title: str) -> None:
    """Train loss per logged step and eval loss/accuracy per epoch, side by side."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    train = [r for r in history if r.get("kind") == "train"]
    evals = [r for r in history if r.get("kind") == "eval"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    if train:
        ax_loss.plot([r["epoch"] for r in train], [r["train_loss"] for r in train], label="train loss", alpha=0.7)
    if evals:
        epochs = [r["epoch"] for r in evals]
        ax_loss.plot(epochs, [r["train_loss"] for r in evals], "o-", label="train loss (epoch mean)")
        ax_loss.plot(epochs, [r["eval"]["loss"] for r in evals], "s-", label="eval loss")
        for name, style in zip(_scores(evals[-1]["eval"]), ("o-", "s--", "^:"), strict=False):
            ax_acc.plot(epochs, [r["eval"][name] for r in evals], style, label=_LABELS.get(name, name))
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="score on held-out data", title="Held-out metrics")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(out: Path, recipe: Recipe, summary: dict[str, Any], history: list[dict[str, Any]]) -> None:
    """Write ``report.md`` and ``learning_curves.png`` into ``out``."""
    plot_learning_curves(history, out / "learning_curves.png", f"{recipe.name}: {summary['backbone']} "
                         f"+ {summary['strategy']}")
    ev = summary["eval"]
    lines = [
        f"# {recipe.name}",
        "",
        f"{summary['backbone']} fine-tuned with strategy **{summary['strategy']}** on "
        f"{summary['num_train_examples']} examples, evaluated on {summary['num_eval_examples']} held-out examples "
        f"({len(summary['label_names'])} labels).",
        "",
    ]
    if summary.get("source"):
        lines += [f"Transferred from the source run `{summary['source']}`.", ""]
    lines += [
        f"| run | {' | '.join(_LABELS.get(k, k) for k in _scores(ev))} | eval loss | trainable params | total params "
        f"| train seconds |",
        "| --- |" + " ---: |" * (len(_scores(ev)) + 4),
        _row("this run", ev, summary),
    ]
    for name, base in summary.get("baselines", {}).items():
        lines.append(_row(f"baseline: {name}", base["eval"], base))
    for name, gain in summary.get("transfer_gain", {}).items():
        gains = ", ".join(f"{value * 100:+.1f} pt {_LABELS.get(k, k)}" for k, value in gain.items())
        lines += ["", f"**Transfer gain over {name}:** {gains}."]
    lines += ["", "## Learning curves", "", "![learning curves](learning_curves.png)", ""]
    lines += ["## Recipe", "", "```yaml", recipe.to_yaml().rstrip(), "```", ""]
    (out / "report.md").write_text("\n".join(lines))


def _row(name: str, ev: dict[str, float], s: dict[str, Any]) -> str:
    return (
        f"| {name} | {' | '.join(f'{ev[k]:.4f}' for k in _scores(ev))} | {ev['loss']:.4f} | "
        f"{s['trainable_params']:,} | {s['total_params']:,} | {s['train_seconds']:.1f} |"
    )
