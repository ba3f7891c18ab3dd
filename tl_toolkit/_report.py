"""``report.md`` and its learning-curve plot, written at the end of a run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._recipe import Recipe

__all__ = ["plot_learning_curves", "write_report"]


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
        ax_acc.plot(epochs, [r["eval"]["accuracy"] for r in evals], "o-", label="accuracy")
        ax_acc.plot(epochs, [r["eval"]["f1_macro"] for r in evals], "s--", label="macro-F1")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="score on held-out data", title="Held-out metrics", ylim=(0, 1.02))
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
        "| run | accuracy | macro-F1 | eval loss | trainable params | total params | train seconds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        _row("this run", ev, summary),
    ]
    for name, base in summary.get("baselines", {}).items():
        lines.append(_row(f"baseline: {name}", base["eval"], base))
    for name, gain in summary.get("transfer_gain", {}).items():
        lines += ["", f"**Transfer gain over {name}:** {gain['accuracy'] * 100:+.1f} pt accuracy, "
                  f"{gain['f1_macro'] * 100:+.1f} pt macro-F1."]
    lines += ["", "## Learning curves", "", "![learning curves](learning_curves.png)", ""]
    lines += ["## Recipe", "", "```yaml", recipe.to_yaml().rstrip(), "```", ""]
    (out / "report.md").write_text("\n".join(lines))


def _row(name: str, ev: dict[str, float], s: dict[str, Any]) -> str:
    return (
        f"| {name} | {ev['accuracy']:.4f} | {ev['f1_macro']:.4f} | {ev['loss']:.4f} | "
        f"{s['trainable_params']:,} | {s['total_params']:,} | {s['train_seconds']:.1f} |"
    )
