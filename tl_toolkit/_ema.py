"""``train.ema``: an exponential moving average of the trainable weights.

After every optimizer step each averaged tensor moves toward its parameter:
``avg = decay * avg + (1 - decay) * param`` (one fused ``lerp`` over all of
them). Evaluation and the saved model use the average; training goes on from
the raw weights. The average is part of every checkpoint (accelerate's
``register_for_checkpointing``), so a resumed run continues the same average
and ends with the same weights as an uninterrupted one, instead of restarting
it from the resumed weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["EmaWeights"]


class EmaWeights:
    """The moving average of ``params`` (the parameters the optimizer holds), with decay ``decay``."""

    def __init__(self, params: list[torch.Tensor], decay: float) -> None:
        self.params = params
        self.decay = decay
        self.updates = 0
        self.average = [p.detach().clone() for p in params]

    def update(self) -> None:
        """Move the average one step toward the current parameters (call after each optimizer step)."""
        import torch

        with torch.no_grad():
            torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1.0 - self.decay)
        self.updates += 1

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The parameters hold the average inside the block, their own values again after it."""
        self._swap()
        try:
            yield
        finally:
            self._swap()

    def copy_to_params(self) -> None:
        """Make the average the parameters' values for good (the model a run saves)."""
        import torch

        with torch.no_grad():
            for param, avg in zip(self.params, self.average, strict=True):
                param.data.copy_(avg)

    def _swap(self) -> None:
        import torch

        with torch.no_grad():
            for param, avg in zip(self.params, self.average, strict=True):
                kept = param.data.clone()
                param.data.copy_(avg)
                avg.copy_(kept)

    # accelerate's save_state / load_state call these for registered objects
    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "average": [a.cpu() for a in self.average]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        import torch

        self.updates = state["updates"]
        with torch.no_grad():
            for avg, saved in zip(self.average, state["average"], strict=True):
                avg.copy_(saved.to(avg.device))
