"""Transfer under a resolution and statistics shift (issue 23): tl_toolkit against a plain PyTorch loop.

Source: a ResNet-18 trained from scratch by tl_toolkit on five CIFAR-10 classes
(airplane, automobile, bird, cat, deer) at their own 32 px, as
``recipes/cifar10_resnet18_source.yaml`` does but on fewer images. Target: the
other five classes from ``--per-class`` training images each, upsampled to
64 px, evaluated on a fixed set of their test images (the first ``--eval-per-class``
files of each class folder; the training images are the first files too, so
every contender sees the same pixels). Four contenders, each from scratch and
transferred from the source run's saved model:

- ``plain``: timm + a plain PyTorch loop: SGD momentum 0.9, lr 0.05, weight
  decay 5e-4, cosine per step, pad-and-crop (8 px) plus flip, CIFAR mean/std,
  images resized to 64x64 (bilinear); the transfer loads the source run's
  ``model.safetensors`` (head dropped).
- ``tl``: ``finetune()`` on ``recipes/cifar10_resnet18_target_full.yaml`` with
  ``data.image_size: 64`` and nothing tuned; scratch is its ``baselines: [scratch]``
  run (same recipe, random weights, fed the same way: the options the transfer run
  took from the source run included). ``--inits scratch`` alone trains the recipe
  with ``backbone.init_from: null`` instead (the generic defaults).
  ``--tl KEY=VALUE`` adds overrides to both (a candidate fix, measured alone).

Prints one row per (contender, seed) and the mean transfer gain, and with
``--json`` (the default when not ``--quick``) writes
``bench/results/<date>-vision-shift-cpu.json``.

Usage: python -m bench.vision_shift [--quick] [--seeds 0,1,2] [--only plain,tl] [--tl KEY=VALUE ...]
                                   [--source KEY=VALUE ...]
       python -m bench.vision_shift --plot RESULTS.json CURVES.png
    --quick   2 epochs on 10 images per class (checks the script; figures not to quote)
    --work    where the image subsets and runs go (default /tmp/t23/vision-shift)
    --tag     a name for the tl variant in the table and the JSON (default: the overrides)

On a 2-core CPU running two of these at once, one thread each (``--threads 1``), the
defaults: the source run took about 4 minutes, each target run about a minute.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SOURCE_CLASSES = ["airplane", "automobile", "bird", "cat", "deer"]
TARGET_CLASSES = ["dog", "frog", "horse", "ship", "truck"]
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def subset_folder(data: Path, out: Path, per_class: int, eval_per_class: int) -> Path:
    """``out/{train,test}/<class>/`` holding links to the first images of each target class (sorted names)."""
    for split, count in (("train", per_class), ("test", eval_per_class)):
        for cls in TARGET_CLASSES:
            folder = out / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            wanted = sorted((data / split / cls).iterdir())[:count]
            if sorted(p.name for p in folder.iterdir()) == [p.name for p in wanted]:
                continue  # already linked (another process of the bench may be reading it)
            for old in folder.iterdir():
                old.unlink()
            for path in wanted:
                (folder / path.name).symlink_to(path)
    return out


def train_source(data: Path, out: Path, per_class: int, epochs: int, extra: list[str]) -> tuple[Path, float]:
    """The tl_toolkit source run (reused when ``out`` holds a finished one with the same settings)."""
    from tl_toolkit import finetune

    overrides = [f"data.train={data / 'train'}", f"data.eval={data / 'test'}", f"output_dir={out}",
                 f"data.max_train_per_class={per_class}", "data.max_eval_samples=500", f"train.epochs={epochs}",
                 "train.num_workers=0", *extra]
    stamp = out / "bench-settings.json"
    if (out / "summary.json").is_file() and stamp.is_file() and json.loads(stamp.read_text()) == overrides:
        return out / "model", 0.0
    started = time.perf_counter()
    finetune(ROOT / "recipes" / "cifar10_resnet18_source.yaml", overrides, overwrite=True, quiet=True)
    stamp.write_text(json.dumps(overrides))
    return out / "model", time.perf_counter() - started


def tl_run(folder: Path, out: Path, seed: int, epochs: int, source: Path | None, extra: list[str],
           scratch: bool = False) -> dict[str, Any]:
    """``finetune()`` on the CIFAR target recipe at 64 px; scratch when ``source`` is None.

    ``scratch`` (with a ``source``): also train the recipe's scratch baseline (``baselines: [scratch]``),
    which sees the inputs the transfer run does (the options it took from the source run), and
    return its row under ``"scratch"``.
    """
    from tl_toolkit import finetune

    overrides = [f"data.train={folder / 'train'}", f"data.eval={folder / 'test'}", "data.max_train_per_class=null",
                 "data.image_size=64", f"train.epochs={epochs}", "train.num_workers=0", f"seed={seed}",
                 f"output_dir={out}", f"backbone.init_from={source if source else 'null'}",
                 f"baselines={'[scratch]' if scratch and source else '[]'}", *extra]
    started = time.perf_counter()
    result = finetune(ROOT / "recipes" / "cifar10_resnet18_target_full.yaml", overrides, overwrite=True, quiet=True)
    seconds = time.perf_counter() - started if not (scratch and source) else result.summary["train_seconds"]
    row = {"accuracy": result.metrics["accuracy"], "seconds": round(seconds, 1), "curve": _curve(out)}
    if source is not None:
        row["drift"] = drift(source / "model.safetensors", out / "model" / "model.safetensors")
        row["inherited_options"] = result.summary.get("inherited_options", {})
    if scratch and source is not None:
        baseline = result.summary["baselines"]["scratch"]
        row["scratch"] = {"accuracy": baseline["eval"]["accuracy"], "seconds": round(baseline["train_seconds"], 1),
                          "curve": _curve(out / "baselines" / "scratch")}
    for run in (out, out / "baselines" / "scratch"):  # ~130 MB a run; the metrics, summary and report stay
        for bulky in ("checkpoints", "model"):
            shutil.rmtree(run / bulky, ignore_errors=True)
    return row


def _curve(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [round(row["eval"]["accuracy"], 4) for row in rows if row.get("kind") == "eval"]


def drift(before: Path | dict[str, Any], after: Path | dict[str, Any]) -> dict[str, float]:
    """Relative change ||w - w0|| / ||w0|| of each top-level block's weights (head excluded)."""
    from safetensors.torch import load_file

    start = load_file(before) if isinstance(before, Path) else before
    end = load_file(after) if isinstance(after, Path) else after
    sums: dict[str, list[float]] = {}
    for key, w0 in start.items():
        block = key.split(".")[0]
        if block == "fc" or not key.endswith("weight") or w0.ndim < 2:
            continue
        delta = (end[key].float() - w0.float()).norm().item() ** 2
        acc = sums.setdefault(block, [0.0, 0.0])
        acc[0] += delta
        acc[1] += w0.float().norm().item() ** 2
    return {block: round((d / max(n, 1e-12)) ** 0.5, 3) for block, (d, n) in sums.items()}


def _images(folder: Path) -> tuple[list[Any], list[int]]:
    from PIL import Image

    images, labels = [], []
    for label, cls in enumerate(TARGET_CLASSES):
        for path in sorted((folder / cls).iterdir()):
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
            labels.append(label)
    return images, labels


def plain_run(folder: Path, seed: int, epochs: int, source: Path | None) -> dict[str, Any]:
    """timm + a plain PyTorch loop (the issue's protocol); scratch when ``source`` is None."""
    import timm
    import torch
    from safetensors.torch import load_file
    from torchvision import transforms as T

    torch.manual_seed(seed)
    resize = T.Resize((64, 64), interpolation=T.InterpolationMode.BILINEAR)
    norm = [T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)]
    train_tf = T.Compose([resize, T.RandomCrop(64, padding=8), T.RandomHorizontalFlip(), *norm])
    eval_tf = T.Compose([resize, *norm])
    train_x, train_y = _images(folder / "train")
    eval_x, eval_y = _images(folder / "test")
    model = timm.create_model("resnet18", num_classes=len(TARGET_CLASSES))
    if source is not None:
        state = {k: v for k, v in load_file(source / "model.safetensors").items() if not k.startswith("fc.")}
        model.load_state_dict(state, strict=False)
    batch = 32
    steps = math.ceil(len(train_x) / batch) * epochs
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    eval_batch = torch.stack([eval_tf(im) for im in eval_x])
    targets = torch.tensor(eval_y)
    curve = []
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train_x)).tolist()
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            x = torch.stack([train_tf(train_x[j]) for j in idx])
            y = torch.tensor([train_y[j] for j in idx])
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            preds = torch.cat([model(eval_batch[i:i + 250]).argmax(1) for i in range(0, len(eval_batch), 250)])
        curve.append(round((preds == targets).float().mean().item(), 4))
    row = {"accuracy": curve[-1], "seconds": round(time.perf_counter() - started, 1), "curve": curve}
    if source is not None:
        row["drift"] = drift(initial, model.state_dict())
    return row


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread of each contender's scratch and transfer accuracy, and of the gain per seed."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["contender"] for r in rows):
        by_seed = {(r["seed"], r["init"]): r["accuracy"] for r in rows if r["contender"] == name}
        seeds = sorted({s for s, _ in by_seed})
        gains = [by_seed[s, "transfer"] - by_seed[s, "scratch"] for s in seeds
                 if (s, "transfer") in by_seed and (s, "scratch") in by_seed]
        entry: dict[str, Any] = {}
        for init in ("scratch", "transfer"):
            values = [by_seed[s, init] for s in seeds if (s, init) in by_seed]
            if values:
                entry[init] = {"mean": round(statistics.mean(values), 4),
                               "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0}
        if gains:
            entry["gain_pt"] = {"mean": round(100 * statistics.mean(gains), 2),
                                "std": round(100 * statistics.stdev(gains), 2) if len(gains) > 1 else 0.0}
        out[name] = entry
    return out


def plot(results: Path, out: Path) -> None:
    """Accuracy per epoch of each contender, scratch (dashed) and transfer (solid), mean over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for run in json.loads(results.read_text())["runs"] for row in run["rows"]]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, name in enumerate(dict.fromkeys(r["contender"] for r in rows)):
        for init, style in (("scratch", "--"), ("transfer", "-")):
            curves = [r["curve"] for r in rows if r["contender"] == name and r["init"] == init]
            if curves:
                mean = [statistics.mean(epoch) for epoch in zip(*curves, strict=True)]
                ax.plot(range(1, len(mean) + 1), mean, style, color=f"C{i}", label=f"{name}, {init}")
    ax.set(xlabel="epoch", ylabel="accuracy (mean of the seeds)",
           title="32 px CIFAR-10 source -> 64 px target, 60 images per class")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"plot: {out}")


def _slug(tag: str) -> str:
    return tag.replace(" ", "_").replace("/", "-").replace(",", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cifar10")
    parser.add_argument("--work", type=Path, default=Path("/tmp/t23/vision-shift"))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--only", default="plain,tl", help="contenders: plain, tl")
    parser.add_argument("--inits", default="scratch,transfer")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--eval-per-class", type=int, default=200)
    parser.add_argument("--source-per-class", type=int, default=600)
    parser.add_argument("--source-epochs", type=int, default=4)
    parser.add_argument("--source", action="append", default=[], metavar="KEY=VALUE",
                        help="override of the source run (its own folder; every contender transfers from it)")
    parser.add_argument("--tl", action="append", default=[], metavar="KEY=VALUE", help="override of the tl runs")
    parser.add_argument("--tag", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="results file (default: bench/results/, not with --quick)")
    parser.add_argument("--plot", type=Path, nargs=2, metavar=("RESULTS", "PNG"),
                        help="only draw the learning curves of a results file")
    args = parser.parse_args()
    if args.plot:
        plot(*args.plot)
        return
    if args.quick:
        args.epochs, args.per_class, args.eval_per_class, args.source_per_class, args.source_epochs = 2, 10, 20, 40, 1
    import torch

    torch.set_num_threads(args.threads)
    work = args.work / ("quick" if args.quick else "full")
    folder = subset_folder(args.data, work / "data", args.per_class, args.eval_per_class)
    source_dir = work / ("source-" + _slug("_".join(args.source)) if args.source else "source")
    source, source_seconds = train_source(args.data, source_dir, args.source_per_class, args.source_epochs, args.source)
    print(f"source run: {source} ({source_seconds:.0f} s; 0 = reused)", flush=True)
    tag = args.tag or ("tl " + " ".join(args.tl) if args.tl else "tl")
    rows: list[dict[str, Any]] = []
    inits = args.inits.split(",")
    for seed in [int(s) for s in args.seeds.split(",")]:
        for contender in args.only.split(","):
            found: list[tuple[str, dict[str, Any]]] = []
            if contender == "plain":
                name = "plain"
                for init in inits:
                    found.append((init, plain_run(folder, seed, args.epochs, source if init == "transfer" else None)))
            elif inits == ["scratch"]:  # the recipe alone, as a user without a source run would train it
                name = tag
                found.append(("scratch", tl_run(folder, work / "runs" / f"{_slug(tag)}-scratch-{seed}", seed,
                                                args.epochs, None, args.tl)))
            else:  # the transfer run, and its scratch baseline as `baselines: [scratch]` trains it
                name = tag
                row = tl_run(folder, work / "runs" / f"{_slug(tag)}-{seed}", seed, args.epochs, source, args.tl,
                             scratch="scratch" in inits)
                if "scratch" in row:
                    found.append(("scratch", row.pop("scratch")))
                found.append(("transfer", row))
            for init, row in found:
                rows.append({"contender": name, "init": init, "seed": seed, **row})
                print(f"{name:<40} {init:<9} seed {seed}  accuracy {row['accuracy']:.4f}  ({row['seconds']:.0f} s)  "
                      f"curve {row['curve']}"
                      + (f"  drift {row['drift']}" if "drift" in row else "")
                      + (f"  from the source {row['inherited_options']}" if row.get("inherited_options") else ""),
                      flush=True)
    summary = _summary(rows)
    print(f"\n{'contender':<40} {'scratch':>15} {'transfer':>15} {'gain (pt)':>14}")
    for name, entry in summary.items():
        cells = [f"{entry[k]['mean']:.4f} ±{entry[k]['std']:.3f}" if k in entry else "-" for k in ("scratch", "transfer")]
        gain = f"{entry['gain_pt']['mean']:+.1f} ±{entry['gain_pt']['std']:.1f}" if "gain_pt" in entry else "-"
        print(f"{name:<40} {cells[0]:>15} {cells[1]:>15} {gain:>14}")
    target = args.json or (None if args.quick else ROOT / "bench" / "results"
                           / f"{time.strftime('%Y-%m-%d')}-vision-shift-cpu.json")
    if target:
        previous = json.loads(target.read_text()) if target.is_file() else {"runs": []}
        settings = {k: v for k, v in vars(args).items() if k not in ("json", "data", "work")}
        previous["runs"].append({"settings": settings, "rows": rows, "summary": summary})
        target.write_text(json.dumps(previous, indent=1) + "\n")
        print(f"results: {target}")


if __name__ == "__main__":
    main()
