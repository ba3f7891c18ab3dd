"""Saving a model trained sharded (FSDP, through ``accelerate launch`` with an FSDP config).

Under FSDP each process holds a shard of every weight, so the trained module
cannot be saved as it is. Every process takes part in gathering the full
state dict (accelerate's ``get_state_dict``: FSDP2's ``get_model_state_dict``
with ``full_state_dict=True``, on the CPU); the main process then loads it into
a fresh, unsharded copy of the same model (built by the same backbone and
strategy) and saves that copy exactly as a one-process run saves its model, so
the plain libraries load it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch import nn

__all__ = ["is_sharded", "unsharded_copy"]


def is_sharded(accelerator: Accelerator) -> bool:
    """Whether the run's weights are split across processes (FSDP)."""
    return str(accelerator.distributed_type) in ("FSDP", "DistributedType.FSDP")


def unsharded_copy(full_state: dict[str, Any] | None, build: Callable[[], nn.Module]) -> nn.Module | None:
    """``build()`` a fresh copy of the model and load the gathered ``full_state`` into it (main process).

    Returns None where ``full_state`` is None (the processes that gathered for the main one).

    Raises:
        RuntimeError: the gathered weights do not fit the fresh model (missing or unexpected keys).
    """
    if full_state is None or not full_state:
        return None
    model = build()
    result = model.load_state_dict(full_state, strict=True)
    del result
    return model
