"""Keeping the model libraries' own chatter out of a run's output."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["libraries_quieted", "quiet_libraries"]


def quiet_libraries(quiet: bool) -> None:
    """Keep the libraries' own chatter (load reports, deprecation notes, save bars) out of the run's output."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    for module in ("transformers", "peft", "timm", "accelerate", "torch"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
    if quiet or not sys.stderr.isatty():
        datasets.disable_progress_bars()
        transformers.logging.disable_progress_bar()


@contextmanager
def libraries_quieted(quiet: bool) -> Iterator[None]:
    """:func:`quiet_libraries` for one call from Python: the caller's logging, warning filters and bars come back."""
    import warnings

    import datasets
    import transformers

    verbosity = transformers.logging.get_verbosity()
    bars = datasets.is_progress_bar_enabled(), transformers.logging.is_progress_bar_enabled()
    with warnings.catch_warnings():
        quiet_libraries(quiet)
        try:
            yield
        finally:
            transformers.logging.set_verbosity(verbosity)
            if bars[0]:
                datasets.enable_progress_bars()
            if bars[1]:
                transformers.logging.enable_progress_bar()
