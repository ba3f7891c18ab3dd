"""The grammar of the ``tl`` command line: its verbs, their arguments and their help.

``_cli`` parses with it and runs the verb; kept apart so that each file stays one job.
"""

from __future__ import annotations

import argparse

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """Every verb of ``tl`` with its arguments and help; abbreviated options are refused."""
    parser = argparse.ArgumentParser(
        prog="tl",
        description="tl_toolkit: fine-tune pretrained text and image models on your data with YAML recipes.",
        epilog="Run `tl COMMAND --help` for a command's options. Docs: README.md and docs/.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run a recipe end to end", description="Run a recipe: data -> model -> "
                       "strategy -> train -> evaluate -> save -> report.")
    p.add_argument("recipe", nargs="?", help="recipe YAML file (or --from-manifest)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.epochs=1")
    p.add_argument("--from-manifest", metavar="MODEL_DIR",
                   help="re-run the recipe in a finished run's model/manifest.json instead of a recipe file")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in output_dir")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    p = sub.add_parser("compare", help="run a recipe under several strategies and compare them",
                       description="Run the recipe under each strategy (same splits and seed) and write "
                       "comparison.md/.json/.png with the transfer gain of each over scratch.")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--strategies", help="comma-separated, e.g. head-only,lora,full,scratch "
                   "(default: the recipe's compare.strategies)")
    p.add_argument("--output", help="folder for the runs and comparison files (default: <output_dir>/compare)")
    p.add_argument("--train-sizes", help="sample efficiency: examples per class, e.g. 8,16,64,all "
                   "(default: the recipe's compare.train_sizes)")
    p.add_argument("--seeds", help="with --train-sizes: comma-separated seeds, e.g. 0,1,2 "
                   "(default: the recipe's compare.seeds, else its seed)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    p = sub.add_parser("sweep", help="search recipe keys with Optuna, each trial a run",
                       description="Search the recipe's sweep.space with Optuna (study in <output_dir>/sweep/"
                       "study.db), prune weak trials, and write leaderboard.md/.json, plots and best.yaml.")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--trials", type=int, help="finished-or-pruned trials to end with (default: sweep.trials)")
    p.add_argument("--resume", action="store_true", help="continue the study in <output_dir>/sweep")
    p.add_argument("--overwrite", action="store_true", help="replace that study and its trials (kept until the new sweep finishes)")
    p.add_argument("--backend", default="local", help="local (default: one trial at a time) or ray")
    p.add_argument("--parallel", type=int, default=1, metavar="K", help="trials at once (--backend ray)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    p = sub.add_parser("plan", help="estimate a recipe's cost without training",
                       description="Parameters, peak memory and time per epoch (from a few measured steps), "
                       "feature-cache use, and offline availability of every file.")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--steps", type=int, default=8, help="training steps to measure, after 2 of warm-up (default 8)")

    p = sub.add_parser("validate", help="check a recipe without training",
                       description="Check a recipe's schema, plugin names and files; print every problem.")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")

    p = sub.add_parser("list", help="list registered plugins", description="List every registered plugin, "
                       "the distribution that provides it, and plugins that failed to load.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--verbose", metavar="NAME", help="also print this plugin's options, defaults and descriptions")

    p = sub.add_parser("new-plugin", help="write a ready-to-install plugin package",
                       description="Write a plugin package NAME/ (pyproject with the entry point, the module, "
                       "a test) that `pip install -e NAME` registers.")
    p.add_argument("name", help="the plugin's name in recipes, e.g. myaug")
    p.add_argument("--kind", choices=["strategy", "backbone", "task"], required=True)
    p.add_argument("--output", default=".", help="folder to create the package in (default: here)")

    p = sub.add_parser("predict", help="predict with a finished run",
                       description="Predict labels; prints one JSON object a line with input, label and score.")
    p.add_argument("run_dir", help="output_dir of a finished run (or its model/ directory)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="text file (one example a line), CSV/TSV/JSONL/Parquet file, or image files/folders")
    p.add_argument("--column", help="text column of CSV/JSONL inputs (default: the recipe's data.text_column)")
    p.add_argument("--top-k", type=int, default=1, help="also list the k most likely labels")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--output", help="write the JSON lines to this file instead of standard output")

    p = sub.add_parser("export", help="export a finished run's model for other tools",
                       description="Write a finished run's model in a format plain transformers / timm / "
                       "onnxruntime load without tl_toolkit; LoRA adapters merged with --merge-lora.")
    p.add_argument("run_dir", help="output_dir of a finished run (or its model/ directory)")
    p.add_argument("--format", required=True,  # any format the run's backbone lists in export_formats
                   help="a format the run's backbone declares; built in: hf (bert), timm (resnet), onnx (both)")
    p.add_argument("--merge-lora", action="store_true", help="merge LoRA adapters into the weights (plain model)")
    p.add_argument("--output", help="directory to write (default: RUN_DIR/export/FORMAT); must be new or empty")

    p = sub.add_parser("wise-ft", help="interpolate a run between its starting and fine-tuned weights (WiSE-FT)",
                       description="Evaluate each alpha (0: starting backbone, 1: the run's) on the run's eval data "
                       "and on data.eval=... given as an override; write wise_ft.json/.md/.png and save one "
                       "alpha's model as a run directory under RUN_DIR/wise_ft/.")
    p.add_argument("run_dir")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--alphas", default="0,0.25,0.5,0.75,1", help="comma-separated weights in [0, 1]")
    p.add_argument("--save", type=float, default=None, metavar="ALPHA",
                   help="the alpha whose model to save (default: the best on the run's eval data)")

    p = sub.add_parser("eval", help="evaluate a finished run",
                       description="Evaluate a finished run on its eval data, or on data.eval=... overridden.")
    p.add_argument("run_dir")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--batch-size", type=int, default=64)
    for each in (parser, *sub.choices.values()):
        each.allow_abbrev = False  # `--resum` is a typo to report, not --resume
    return parser
