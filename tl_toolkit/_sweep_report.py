"""What a sweep leaves for people: the leaderboard (JSON and Markdown) and three plots.

The plots are drawn with matplotlib from the study's own rows (Optuna's
matplotlib module is marked experimental and draws one figure per call in its
own style): the optimisation history with the best-so-far line, the
parameter importances Optuna's evaluator computes, and the metric against each
searched key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._checkpoint import write_atomic

__all__ = ["write_leaderboard", "write_plots"]

_COLORS = {"complete": "tab:blue", "pruned": "tab:orange", "failed": "tab:red", "running": "tab:gray"}


def write_leaderboard(sweep_dir: Path, rows: Sequence[dict[str, Any]], metric: str, direction: str) -> None:
    """``leaderboard.json`` (trial order) and ``leaderboard.md`` (best first)."""
    write_atomic(sweep_dir / "leaderboard.json", json.dumps(
        {"metric": metric, "direction": direction, "trials": list(rows)}, indent=2) + "\n")
    keys = sorted({k for r in rows for k in r["values"]})
    sign = -1 if direction == "maximize" else 1
    order = sorted(rows, key=lambda r: (r["status"] != "complete", r["status"] != "pruned",
                                        sign * (r["value"] if r["value"] is not None else -sign * 1e300)))
    lines = [
        f"# Sweep leaderboard: {metric} ({direction})",
        "",
        f"| rank | trial | status | {metric} | epochs | seconds | " + " | ".join(keys) + " |",
        "| ---: | ---: | --- | ---: | ---: | ---: | " + " | ".join("---" for _ in keys) + " |",
    ]
    for rank, r in enumerate(order, 1):
        value = f"{r['value']:.4f}" if r["value"] is not None else "-"
        seconds = f"{r['seconds']:.1f}" if r.get("seconds") is not None else "-"
        cells = " | ".join(_cell(r["values"].get(k)) for k in keys)
        lines.append(f"| {rank} | {r['trial']:03d} | {r['status']} | {value} | {r['epochs']} | {seconds} | {cells} |")
    pruned = sum(r["status"] == "pruned" for r in rows)
    lines += ["", f"{len(rows)} trials: {sum(r['status'] == 'complete' for r in rows)} complete, {pruned} pruned, "
              f"{sum(r['status'] == 'failed' for r in rows)} failed. A pruned trial shows its last reported "
              f"{metric}; the study ranks complete trials only.", ""]
    write_atomic(sweep_dir / "leaderboard.md", "\n".join(lines))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def write_plots(sweep_dir: Path, rows: Sequence[dict[str, Any]], importances: dict[str, float], metric: str,
                log_keys: frozenset[str] = frozenset()) -> None:
    """``history.png``, ``importances.png`` (when Optuna can compute them) and ``params.png``."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    scored = [r for r in rows if r["value"] is not None]
    if not scored:
        return
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for status in ("complete", "pruned"):
        pts = [r for r in scored if r["status"] == status]
        ax.scatter([r["trial"] for r in pts], [r["value"] for r in pts], color=_COLORS[status], label=status)
    complete = sorted((r for r in scored if r["status"] == "complete"), key=lambda r: r["trial"])
    if complete:
        direction = json.loads((sweep_dir / "leaderboard.json").read_text())["direction"]
        pick = max if direction == "maximize" else min
        best, xs, ys = None, [], []
        for r in complete:
            best = r["value"] if best is None else pick(best, r["value"])
            xs.append(r["trial"])
            ys.append(best)
        ax.step(xs, ys, where="post", color="black", label="best so far")
    ax.set(xlabel="trial", ylabel=metric, title="Optimisation history")
    ax.legend()
    fig.tight_layout()
    fig.savefig(sweep_dir / "history.png", dpi=110)
    plt.close(fig)

    if importances:
        names = sorted(importances, key=importances.get)  # type: ignore[arg-type]
        fig, ax = plt.subplots(figsize=(6.5, 0.5 + 0.45 * len(names)))
        ax.barh(names, [importances[n] for n in names], color="tab:blue")
        ax.set(xlabel="importance (fANOVA, sums to 1)", title=f"Which keys moved {metric}")
        fig.tight_layout()
        fig.savefig(sweep_dir / "importances.png", dpi=110)
        plt.close(fig)

    keys = sorted({k for r in scored for k in r["values"]})
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        pts = [r for r in scored if key in r["values"]]
        xs = [r["values"][key] for r in pts]
        categorical = any(isinstance(x, str | bool) or x is None for x in xs)
        if categorical:
            labels = sorted({str(x) for x in xs})
            xs = [labels.index(str(x)) for x in xs]
            ax.set_xticks(range(len(labels)), labels, rotation=30)
        elif key in log_keys:
            ax.set_xscale("log")
        ax.scatter(xs, [r["value"] for r in pts], c=[_COLORS[r["status"]] for r in pts])
        ax.set(xlabel=key, ylabel=metric)
    fig.suptitle(f"{metric} against each searched key (orange: pruned)")
    fig.tight_layout()
    fig.savefig(sweep_dir / "params.png", dpi=110)
    plt.close(fig)
