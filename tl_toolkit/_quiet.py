"""Keeping the model libraries' own chatter out of a run's output."""

from __future__ import annotations

import os
import sys

__all__ = ["quiet_libraries"]


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
