"""Run the benchmark suite: ``python -m bench [--quick] [--only NAME,...] [--results-dir DIR]``.

Each benchmark measures tl_toolkit and its peer side by side in one process
(alternating, several repeats, medians) and prints its own table; the suite
then prints a summary of the headline figures and writes every row to
``bench/results/<date>-<machine>.json``.

``--quick`` runs each at a small size: it checks that the suite works, its
figures are not the ones to quote.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import RESULTS_DIR, table, write_results

#: name -> (module, arguments for a full run, arguments for --quick)
SUITE: dict[str, tuple[str, list[str], list[str]]] = {
    "overhead": ("bench.overhead", [], ["--repeats", "1", "--batches", "2", "--batch", "4"]),
    "strategies": ("bench.strategies", [], ["--repeats", "1", "--steps", "1", "--batch", "4"]),
    "efficiency": ("bench.efficiency", [], ["--repeats", "2", "--batch", "4", "--matmul", "512"]),
    "gpu": ("bench.gpu", [], ["--tiny", "--steps", "3", "--warmup", "2"]),
}


def _headlines(name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The figures the suite's acceptance reads, one line each."""
    out = []
    for row in rows:
        if name == "overhead":
            out.append({"figure": f"overhead {row['model']}: tl_toolkit / hand-written step time", "value": row["ratio"]})
        elif name == "strategies" and row["strategy"] != "full":
            if "time_vs_full" in row:
                out.append({"figure": f"{row['model']} {row['strategy']} / full step time", "value": row["time_vs_full"]})
            if "memory_vs_full" in row:
                out.append({"figure": f"{row['model']} {row['strategy']} / full peak memory",
                            "value": row["memory_vs_full"]})
        elif name == "efficiency" and "gflop_per_step" in row:
            out.append({"figure": f"{row['what']}: share of matmul FLOP/s", "value": row["share"]})
        elif name == "gpu":
            out.append({"figure": f"{row['workload']} {row['side']}: MFU", "value": row["mfu"]})
            if "vs_peer" in row:
                out.append({"figure": f"{row['workload']} tl_toolkit vs peer (speed)", "value": row["vs_peer"]})
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the suite, not figures to quote")
    parser.add_argument("--only", default=",".join(SUITE), help=f"comma-separated subset of {', '.join(SUITE)}")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    import importlib

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SUITE))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(SUITE)}")
    results: dict[str, Any] = {}
    headlines: list[dict[str, Any]] = []
    for name in names:
        module, full, quick = SUITE[name]
        print(f"\n=== {name} ({module}) ===", flush=True)
        started = time.perf_counter()
        bench_main: Callable[[list[str]], list[dict[str, Any]]] = importlib.import_module(module).main
        rows = bench_main(quick if args.quick else full)
        results[name] = {"rows": rows, "seconds": round(time.perf_counter() - started, 1), "quick": args.quick}
        headlines += _headlines(name, rows)
    print("\n=== summary ===")
    print(table(headlines, [("figure", "figure", ""), ("value", "value", ".3f")]))
    path = write_results(results, args.results_dir)
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    main()
