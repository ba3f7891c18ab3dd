"""``tl compare --train-sizes``: how accuracy grows with the number of labels, under each strategy.

For every size (examples per class, or ``all``) and seed, the recipe's
training data is cut to ``size`` examples of each class with that seed
(``data.max_train_per_class``: every strategy sees the same examples at a given
size and seed, and a smaller size's examples are among a larger one's), every
strategy runs on it, and all are evaluated on the recipe's eval data. Runs go
to ``<output>/size-<S>/seed-<N>/<strategy>/``; a finished run whose resolved
recipe is unchanged is read back instead of trained again, so an interrupted
grid continues where it stopped. A frozen backbone's eval features come from
the feature cache after their first computation, whatever the size and seed.

``comparison.json``, ``comparison.md`` and ``comparison.png`` then hold the
mean and standard deviation over seeds of accuracy and macro-F1 per strategy
and size, training seconds, the winner at each size, and the curve of
accuracy against labels per class.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._errors import UserError
from ._recipe import Recipe

__all__ = ["GridRun", "parse_seeds", "parse_sizes", "sample_efficiency"]

ALL = "all"


@dataclass
class GridRun:
    """One strategy at one size and seed."""

    size: int | str  # examples per class, or "all"
    seed: int
    strategy: str
    accuracy: float
    f1_macro: float
    train_seconds: float
    train_examples: int
    eval_examples: int
    output_dir: str


def parse_sizes(text: str, flag: str = "--train-sizes") -> list[int | str]:
    """``"8,16,all"`` -> ``[8, 16, "all"]``.

    Raises:
        UserError: an item is neither a positive whole number nor ``all``.
    """
    sizes: list[int | str] = []
    for item in (part.strip() for part in text.split(",")):
        if item == ALL:
            sizes.append(ALL)
        elif item.isdigit() and int(item) > 0:
            sizes.append(int(item))
        else:
            raise UserError(f"{flag}: {item!r} is not a number of examples per class; give positive whole numbers "
                            f"or 'all', comma-separated, e.g. 8,16,64,all")
    return sizes


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``.

    Raises:
        UserError: an item is not a whole number.
    """
    items = [part.strip() for part in text.split(",")]
    bad = [item for item in items if not item.lstrip("-").isdigit()]
    if bad:
        raise UserError(f"--seeds: {bad[0]!r} is not a whole number; give comma-separated seeds, e.g. 0,1,2")
    return [int(item) for item in items]


def sample_efficiency(recipe: Recipe, strategies: list[str] | None, sizes: list[int | str], seeds: list[int],
                      output: Path | None = None, quiet: bool = False) -> list[GridRun]:
    """Run every strategy at every size and seed; write the comparison files into ``output``.

    Raises:
        UserError: an unknown strategy name, or any problem a run meets.
    """
    from ._compare import _checked_names
    from ._pipeline import with_source_options

    names = _checked_names(strategies or recipe.compare.strategies)
    recipe = with_source_options(recipe, quiet)  # scratch is fed as the transferred runs are
    seeds = list(dict.fromkeys(seeds or recipe.compare.seeds or [recipe.seed]))
    sizes = list(dict.fromkeys(sizes))
    root = output or recipe.output_path / "compare"
    grid = [(size, seed, name) for size in sizes for seed in seeds for name in names]
    started = time.perf_counter()
    runs: list[GridRun] = []
    for done, (size, seed, name) in enumerate(grid):
        out = root / f"size-{size}" / f"seed-{seed}" / name
        summary, reused = _run_one(_grid_recipe(recipe, name, size, seed, out), out)
        runs.append(GridRun(size, seed, name, summary["eval"]["accuracy"], summary["eval"]["f1_macro"],
                            summary["train_seconds"], summary["num_train_examples"], summary["num_eval_examples"],
                            str(out)))
        if not quiet:
            elapsed = time.perf_counter() - started
            left = elapsed / (done + 1) * (len(grid) - done - 1)
            print(f"compare [{done + 1}/{len(grid)}] {size}/class seed {seed} {name}: accuracy "
                  f"{runs[-1].accuracy:.4f}, {runs[-1].train_seconds:.1f}s training{' (finished before)' if reused else ''}"
                  f"; {elapsed / 60:.1f} min so far, ~{left / 60:.1f} min left", file=sys.stderr, flush=True)
    wall = time.perf_counter() - started
    write_comparison(root, recipe, runs, wall)
    if not quiet:
        print(f"compare: {len(grid)} runs in {wall / 60:.1f} min -> {root / 'comparison.md'}")
    return runs


def _grid_recipe(recipe: Recipe, name: str, size: int | str, seed: int, out: Path) -> Recipe:
    from ._compare import SCRATCH, _with_strategy
    from ._pipeline import scratch_recipe

    data = recipe.model_dump(mode="json")
    data["seed"] = seed
    data["data"]["max_train_per_class"] = None if size == ALL else size
    data["train"].update(recipe.compare.train.get(name, {}))
    base = Recipe.model_validate(data)
    label = f"{recipe.name}-{size}pc-s{seed}"
    if name == SCRATCH:
        return scratch_recipe(base, f"{label}-{SCRATCH}", out)
    run = _with_strategy(base, name, out)
    return run.model_copy(update={"name": f"{label}-{name}"})


def _run_one(recipe: Recipe, out: Path) -> tuple[dict[str, Any], bool]:
    """The run's summary: read back when ``out`` holds a finished run of this very recipe, else trained now."""
    from ._pipeline import _run

    if (out / "summary.json").is_file() and (out / "recipe.yaml").is_file() and \
            (out / "recipe.yaml").read_text() == recipe.to_yaml():
        return json.loads((out / "summary.json").read_text()), True
    return _run(recipe, resume=False, overwrite=True, quiet=True).summary, False


# -- the comparison files -------------------------------------------------------


def aggregate(runs: list[GridRun]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds per (strategy, size), in the grid's order."""
    cells: dict[tuple[str, int | str], list[GridRun]] = {}
    for run in runs:
        cells.setdefault((run.strategy, run.size), []).append(run)
    rows = []
    for (strategy, size), group in cells.items():
        acc, f1 = [r.accuracy for r in group], [r.f1_macro for r in group]
        rows.append({"strategy": strategy, "size": size, "seeds": len(group),
                     "accuracy_mean": statistics.fmean(acc), "accuracy_std": _std(acc),
                     "f1_macro_mean": statistics.fmean(f1), "f1_macro_std": _std(f1),
                     "train_seconds_mean": statistics.fmean(r.train_seconds for r in group),
                     "train_seconds_total": sum(r.train_seconds for r in group)})
    return rows


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def winners(rows: list[dict[str, Any]]) -> list[str]:
    """One sentence per size: which strategy has the best mean accuracy there, and by how much."""
    sentences = []
    for size in dict.fromkeys(r["size"] for r in rows):
        ranked = sorted((r for r in rows if r["size"] == size), key=lambda r: -r["accuracy_mean"])
        best = ranked[0]
        margin = (f", {100 * (best['accuracy_mean'] - ranked[1]['accuracy_mean']):.1f} points ahead of "
                  f"{ranked[1]['strategy']}" if len(ranked) > 1 else "")
        where = "With all the training data" if size == ALL else f"At {size} examples per class"
        sentences.append(f"{where}, {best['strategy']} wins: mean accuracy {best['accuracy_mean']:.4f}{margin}.")
    return sentences


def write_comparison(root: Path, recipe: Recipe, runs: list[GridRun], wall_seconds: float) -> None:
    rows = aggregate(runs)
    root.mkdir(parents=True, exist_ok=True)
    eval_examples = runs[0].eval_examples if runs else 0
    (root / "comparison.json").write_text(json.dumps(
        {"recipe": recipe.name, "kind": "sample_efficiency", "eval_examples": eval_examples,
         "wall_seconds": round(wall_seconds, 1), "summary": rows, "winners": winners(rows),
         "runs": [asdict(r) for r in runs]}, indent=2) + "\n")
    seeds = sorted({r.seed for r in runs})
    lines = [
        f"# Sample efficiency: {recipe.name}", "",
        f"Each size draws that many training examples per class with each seed ({', '.join(map(str, seeds))}); "
        f"every strategy trains on the same examples and is evaluated on {eval_examples} eval examples. "
        f"Mean ± standard deviation over seeds; {len(runs)} runs in {wall_seconds / 60:.1f} min.", "",
        *winners(rows), "",
        "| strategy | examples per class | accuracy | macro-F1 | train seconds (mean) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in sorted(rows, key=lambda r: (r["strategy"], _order(r["size"]))):
        lines.append(f"| {r['strategy']} | {r['size']} | {r['accuracy_mean']:.4f} ± {r['accuracy_std']:.4f} | "
                     f"{r['f1_macro_mean']:.4f} ± {r['f1_macro_std']:.4f} | {r['train_seconds_mean']:.1f} |")
    lines += ["", "![accuracy against labels per class](comparison.png)", ""]
    (root / "comparison.md").write_text("\n".join(lines))
    plot_curve(root / "comparison.png", rows)


def _order(size: int | str) -> float:
    return float("inf") if size == ALL else float(size)


def plot_curve(path: Path, rows: list[dict[str, Any]]) -> None:
    """Accuracy against labels per class (log axis), one line per strategy with a band of ±1 std over seeds;
    the full-data run as a dashed reference line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for index, strategy in enumerate(dict.fromkeys(r["strategy"] for r in rows)):
        color = f"C{index}"
        mine = sorted((r for r in rows if r["strategy"] == strategy and r["size"] != ALL), key=lambda r: r["size"])
        if mine:
            x = [r["size"] for r in mine]
            mean = [r["accuracy_mean"] for r in mine]
            std = [r["accuracy_std"] for r in mine]
            ax.plot(x, mean, marker="o", color=color, label=strategy)
            ax.fill_between(x, [m - s for m, s in zip(mean, std, strict=True)],
                            [m + s for m, s in zip(mean, std, strict=True)], color=color, alpha=0.15)
        full = [r for r in rows if r["strategy"] == strategy and r["size"] == ALL]
        if full:
            ax.axhline(full[0]["accuracy_mean"], color=color, linestyle="--", linewidth=1,
                       label=f"{strategy}, all data")
    ax.set_xscale("log", base=2)
    sizes = sorted({r["size"] for r in rows if r["size"] != ALL})
    if sizes:
        ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("labelled training examples per class")
    ax.set_ylabel("eval accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
