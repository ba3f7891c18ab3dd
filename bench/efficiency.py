"""How much of the machine full fine-tuning uses: achieved FLOP/s as a share of a large matmul's.

The FLOPs of one training step (forward + backward) are counted by
``torch.utils.flop_counter.FlopCounterMode`` on the real model, not estimated;
the step is then timed (forward, backward, AdamW) through the backbone plugin.
The reference is a square fp32 matmul on the same device and threads, the
best case for this machine's BLAS. The share is the step's FLOP/s over it.

Usage: python -m bench.efficiency [--repeats 5] [--batch 32] [--matmul 2048]
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from typing import Any

from bench._common import set_threads, side_by_side, table


def matmul_flops_per_second(n: int, repeats: int, device: str = "cpu") -> float:
    """FLOP/s of an n x n fp32 matmul (2 n^3 FLOPs), the fastest of ``repeats``.

    The fastest, not the median: this is the machine's best case, and a median taken while
    another process shares the cores can fall below what a training step then reaches.
    """
    import torch

    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)

    def once() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    once()  # warm-up: thread pool, allocator
    return 2 * n**3 / min(once() for _ in range(repeats))


def step_flops(backbone: Any, model: Any, batch: dict[str, Any]) -> int:
    """FLOPs of one forward + backward pass, counted operator by operator."""
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(backbone.forward(model, batch), batch["labels"]).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def run(repeats: int, batch: int, matmul: int) -> list[dict[str, Any]]:
    from bench.strategies import _setup, _time_steps

    peak = matmul_flops_per_second(matmul, repeats)
    rows: list[dict[str, Any]] = [{"what": f"matmul {matmul}x{matmul} fp32", "gflops": peak / 1e9, "share": 1.0}]
    for kind in ("resnet18", "minilm-l6"):
        backbone, model, batch_, optimizer, *_ = _setup(kind, "full", batch)
        flops = step_flops(backbone, model, batch_)
        seconds = side_by_side({"step": partial(_time_steps, backbone, model, batch_, optimizer, 1)}, repeats)["step"]
        rows.append({"what": f"{kind} full fine-tuning, batch {batch}", "gflop_per_step": flops / 1e9,
                     "step_ms": seconds * 1000, "gflops": flops / seconds / 1e9, "share": flops / seconds / peak})
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--matmul", type=int, default=2048, help="side of the reference matmul")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    from tl_toolkit._quiet import quiet_libraries

    quiet_libraries(True)
    threads = set_threads(args.threads)
    print(f"efficiency: {threads} threads, {args.repeats} repeats")
    rows = run(args.repeats, args.batch, args.matmul)
    print(table(rows, [("what", "", ""), ("gflop_per_step", "GFLOP/step", ".1f"), ("step_ms", "step ms", ".1f"),
                       ("gflops", "GFLOP/s", ".1f"), ("share", "of matmul", ".1%")]))
    return rows


if __name__ == "__main__":
    main()
