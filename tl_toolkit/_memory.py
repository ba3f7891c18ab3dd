"""Peak memory of a block of code: the accelerator's allocator on a GPU, the process's resident set on a CPU.

On a CPU the figure is the highest resident set size seen (sampled every
20 ms) above the level at entry: what the block added, approximately, since
the allocator may keep freed memory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["PeakMemory", "peak_memory"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class PeakMemory:
    """The peak found by :func:`peak_memory`, in bytes, once the block has finished."""

    bytes: int = 0
    device: str = "cpu"

    @property
    def mib(self) -> float:
        return self.bytes / 2**20


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:  # not Linux: the lifetime peak is the best there is
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@contextmanager
def peak_memory() -> Iterator[PeakMemory]:
    """Measure the peak memory the block uses; read ``.bytes`` or ``.mib`` after it."""
    import torch

    result = PeakMemory()
    if torch.cuda.is_available():
        result.device = "cuda"
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        yield result
        result.bytes = torch.cuda.max_memory_allocated() - start
        return
    start, peak, done = _rss(), [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        done.set()
        thread.join()
        result.bytes = max(peak[0], _rss()) - start
