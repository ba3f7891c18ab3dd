"""What every benchmark shares: side-by-side timing, memory high-water marks, and the results file.

Timings are taken side by side in one process: each contender runs once per
repeat, in turn, after one warm-up run each, so that machine noise (other
processes, thermal state) falls on all of them alike. Medians are reported.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def side_by_side(contenders: dict[str, Callable[[], float]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median of ``repeats`` alternating calls of each contender (each returns seconds of one measured unit).

    The order turns round every repeat (A B, B A, A B, ...), so neither contender always runs right
    after the other and inherits its caches, heap or clock state.
    """
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders.items())
    for repeat in range(repeats):
        for name, fn in order if repeat % 2 == 0 else reversed(order):
            samples[name].append(fn())
    return {name: statistics.median(values) for name, values in samples.items()}


def set_threads(threads: int | None) -> int:
    """Use ``threads`` intra-op threads (default: every core); returns the number in use."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


# -- memory -------------------------------------------------------------------


def reset_peak_memory() -> None:
    """Start a new high-water mark: CUDA's allocator peak, and on Linux the process's peak RSS."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    clear_refs = Path("/proc/self/clear_refs")
    if clear_refs.exists():
        clear_refs.write_text("5")  # "5" resets VmHWM to the current RSS (Linux >= 4.0)


def resident_mb(field: str = "VmRSS") -> float:
    """The process's resident memory (``VmRSS``) or its high-water mark (``VmHWM``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field} (memory figures need Linux)")


def peak_memory_mb(baseline_mb: float) -> float:
    """Peak memory since :func:`reset_peak_memory`: CUDA allocator peak on GPU, else peak RSS over ``baseline_mb``."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resident_mb("VmHWM") - baseline_mb


def in_subprocess(module: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m module args`` and parse the JSON object it prints last (a fresh heap for memory figures).

    ``env`` adds environment variables to the child's.
    """
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=root, capture_output=True, text=True, check=False,
        env={**os.environ, **(env or {}),
             "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))},
    )
    if out.returncode != 0:
        raise RuntimeError(f"python -m {module} {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- models -------------------------------------------------------------------


def bert_architecture_dir(root: Path, **config: Any) -> str:
    """A directory with a BERT config (``config`` over BertConfig's defaults, i.e. bert-base) and a
    small WordPiece vocabulary: for synthetic tokens the tokenizer is only what the backbone loads,
    so the directory builds offline anywhere, without any model package."""
    from transformers import BertConfig, BertTokenizerFast

    BertConfig(**config).save_pretrained(root)
    vocab = Path(root) / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz"]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(root)
    return str(root)


# -- results ------------------------------------------------------------------


def machine_name() -> str:
    """A short name for this machine: the GPU's name when there is one, else the CPU model and core count."""
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
    else:
        cpu = platform.processor() or "cpu"
        cpuinfo = Path("/proc/cpuinfo")
        if cpuinfo.exists():
            found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
            cpu = found.group(1) if found else cpu
        name = f"{cpu} x{os.cpu_count()}"
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:60]


def write_results(results: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    """Write ``results`` to ``<directory>/<date>-<machine>.json`` and return the path.

    Benchmarks already in that day's file and not in ``results`` are kept (``--only`` re-runs one).
    """
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{_dt.date.today().isoformat()}-{machine_name()}.json"
    earlier = json.loads(path.read_text()).get("results", {}) if path.exists() else {}
    payload = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "results": {**earlier, **results},
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """A fixed-width text table; ``columns`` are (key, header, format spec)."""
    cells = [[format(row[key], spec) if row.get(key) is not None else "-" for key, _, spec in columns] for row in rows]
    widths = [max(len(header), *(len(c[i]) for c in cells)) for i, (_, header, _) in enumerate(columns)]
    lines = ["  ".join(h.rjust(w) for (_, h, _), w in zip(columns, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
