"""Trained tensors that receive exactly zero gradient in the first steps of a run: said, not hidden.

A tensor the optimizer holds but whose gradient is exactly zero at every one
of the first steps never moves: a layer after it outputs zeros (say a
normalisation weight that starts at zero in a randomly initialised network),
so everything before that layer is cut off. The run would train only what
lies after it, and report a result for a strategy it did not apply. Tensors
whose gradient is ``None`` (not used by the forward pass) are not counted:
they are simply unused. One zero step is normal (LoRA's ``A`` matrices get
zero gradient while ``B`` is still zero), so the watch needs ``steps`` of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["GradientWatch"]


class GradientWatch:
    """Follows the gradients of the trained tensors over the first ``steps`` optimizer steps."""

    def __init__(self, model: nn.Module, steps: int = 3) -> None:
        self.names = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
        self.params: list[torch.Tensor] = [p for p in model.parameters() if p.requires_grad]
        self.steps = steps
        self.seen = 0
        self.moved: set[int] = set()  # ids of tensors that had a non-zero gradient at some step
        self.used: set[int] = set()  # ids of tensors that had a gradient at all

    @property
    def active(self) -> bool:
        return self.seen < self.steps

    def after_backward(self) -> str | None:
        """Call once per optimizer step, before it; returns the warning after the last watched step, if any."""
        import torch

        if not self.active:
            return None
        with_grad = [(p, p.grad) for p in self.params if p.grad is not None]
        if with_grad:
            peaks = torch.stack([g.detach().abs().amax().float() for _, g in with_grad]).cpu().tolist()
            for (p, _), peak in zip(with_grad, peaks, strict=True):
                self.used.add(id(p))
                if peak != 0.0:
                    self.moved.add(id(p))
        self.seen += 1
        return self._verdict() if self.seen == self.steps else None

    def _verdict(self) -> str | None:
        stuck = [self.names[i] for i in self.names if i in self.used and i not in self.moved]
        if not stuck:
            return None
        total = len(self.used)
        return (f"{len(stuck)} of {total} trained tensors got exactly zero gradient in each of the first "
                f"{self.steps} steps (e.g. {', '.join(stuck[:3])}), so they will not train and the run trains only "
                f"the rest: a layer after them outputs zeros, as a normalisation weight that starts at zero in a "
                f"randomly initialised network does; start from pretrained weights (backbone.pretrained: true) "
                f"or backbone.init_from, or choose another strategy")
