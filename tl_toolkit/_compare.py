"""``tl compare``: one recipe under several strategies, side by side, with the transfer gain of each.

Every strategy runs the same recipe (same data splits, same seed, same
training settings) into ``<output>/<strategy>/``; ``scratch`` is the same
architecture from random weights, all of it training. ``comparison.json``,
``comparison.md`` and ``comparison.png`` then hold accuracy, macro-F1,
trainable parameters, train seconds and peak memory per strategy, and the
transfer gain of each over scratch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._errors import UserError, suggest
from ._recipe import Recipe
from ._registry import registry

__all__ = ["StrategyRow", "compare"]

SCRATCH = "scratch"


@dataclass
class StrategyRow:
    """One strategy's figures in the comparison."""

    strategy: str
    accuracy: float
    f1_macro: float
    trainable_params: int
    total_params: int
    train_seconds: float
    peak_memory_mib: float
    output_dir: str
    gain_accuracy: float | None = None  # over scratch, in accuracy points (0-1 scale)
    gain_f1_macro: float | None = None


def compare(recipe: Recipe, strategies: list[str] | None = None, output: Path | None = None,
            quiet: bool = False) -> list[StrategyRow]:
    """Run ``recipe`` under each strategy and write the comparison files into ``output``.

    Raises:
        UserError: an unknown strategy name, or any problem a run meets.
    """
    from ._memory import peak_memory
    from ._pipeline import _run, scratch_recipe, with_source_options

    names = _checked_names(strategies or recipe.compare.strategies)
    recipe = with_source_options(recipe, quiet)  # scratch is fed as the transferred runs are
    if SCRATCH not in names:  # the transfer gain needs it
        names.append(SCRATCH)
    root = output or recipe.output_path / "compare"
    rows = []
    for name in names:
        out = root / name
        if name == SCRATCH:
            run_recipe = scratch_recipe(recipe, f"{recipe.name}-{SCRATCH}", out)
        else:
            run_recipe = _with_strategy(recipe, name, out)
        if not quiet:
            print(f"compare: {name} -> {out}")
        with peak_memory() as peak:
            result = _run(run_recipe, resume=False, overwrite=True, quiet=quiet)
        s = result.summary
        rows.append(StrategyRow(name, s["eval"]["accuracy"], s["eval"]["f1_macro"], s["trainable_params"],
                                s["total_params"], s["train_seconds"], round(peak.mib, 1), str(out)))
    scratch = next(r for r in rows if r.strategy == SCRATCH)
    for row in rows:
        row.gain_accuracy = round(row.accuracy - scratch.accuracy, 6)
        row.gain_f1_macro = round(row.f1_macro - scratch.f1_macro, 6)
    _write(root, recipe, rows, peak.device)
    if not quiet:
        print(f"compare: {', '.join(f'{r.strategy} {r.accuracy:.4f}' for r in rows)} -> {root / 'comparison.md'}")
    return rows


def _checked_names(names: list[str]) -> list[str]:
    known = [i.name for i in registry.all() if i.kind == "strategy" and not i.error]
    unknown = [n for n in names if n != SCRATCH and n not in known]
    if unknown:
        raise UserError([f"--strategies: unknown strategy {n!r}.{suggest(n, [*known, SCRATCH])} "
                         f"Choose from {', '.join([*known, SCRATCH])}" for n in unknown])
    return list(dict.fromkeys(names))


def _with_strategy(recipe: Recipe, name: str, out: Path) -> Recipe:
    data = recipe.model_dump(mode="json")
    own = recipe.strategy.options if name == recipe.strategy.plugin else {}
    data.update(name=f"{recipe.name}-{name}", output_dir=str(out), baselines=[],
                strategy={"plugin": name, "options": recipe.compare.options.get(name, own)})
    return Recipe.model_validate(data)


def _write(root: Path, recipe: Recipe, rows: list[StrategyRow], device: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "comparison.json").write_text(json.dumps(
        {"recipe": recipe.name, "memory_device": device, "strategies": [asdict(r) for r in rows]}, indent=2) + "\n")
    lines = [
        f"# Strategy comparison: {recipe.name}", "",
        f"Same data, splits, seed and training settings for every strategy; transfer gain = accuracy "
        f"(macro-F1) minus that of `{SCRATCH}` (the same architecture from random weights). Peak memory: "
        f"{'GPU allocator' if device == 'cuda' else 'resident set added during the run (CPU, approximate)'}.",
        "",
        "| strategy | accuracy | macro-F1 | transfer gain (acc) | transfer gain (F1) | trainable params | "
        "total params | train seconds | peak memory MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r.strategy} | {r.accuracy:.4f} | {r.f1_macro:.4f} | {100 * (r.gain_accuracy or 0):+.1f} pt | "
                     f"{100 * (r.gain_f1_macro or 0):+.1f} pt | {r.trainable_params:,} | {r.total_params:,} | "
                     f"{r.train_seconds:.1f} | {r.peak_memory_mib:.0f} |")
    lines += ["", "![accuracy and transfer gain per strategy](comparison.png)", ""]
    (root / "comparison.md").write_text("\n".join(lines))
    _plot(root / "comparison.png", rows)


def _plot(path: Path, rows: list[StrategyRow]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.strategy for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels: list[tuple[str, list[Any]]] = [
        ("eval accuracy", [r.accuracy for r in rows]),
        ("transfer gain over scratch (pt)", [100 * (r.gain_accuracy or 0) for r in rows]),
        ("trainable parameters", [r.trainable_params for r in rows]),
    ]
    for ax, (title, values) in zip(axes, panels, strict=True):
        ax.bar(names, values, color="tab:blue")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=30)
    axes[2].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
