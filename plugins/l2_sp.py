"""``l2-sp``: full fine-tuning pulled toward the pretrained starting point (Li et al., 2018).

Plain weight decay pulls every weight toward zero, which forgets what
pretraining learned. L2-SP regularises toward the starting point instead:

    loss = cross_entropy + alpha/2 * ||w_body - w_body^0||^2 + beta/2 * ||w_head||^2

where ``w_body^0`` are the backbone's weights at the start of the run and the
new head, which has no meaningful start, gets ordinary L2. The penalty
replaces ``train.weight_decay``, which this strategy sets to zero.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from tl_toolkit import Backbone, Strategy

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["L2SPOptions", "L2SPStrategy"]


class L2SPOptions(BaseModel):
    """Options of the ``l2-sp`` strategy (``strategy.options``)."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(0.1, ge=0, description="strength of the pull toward the pretrained weights")
    beta: float = Field(0.01, ge=0, description="plain L2 on the new head")


class L2SPStrategy(Strategy):
    """Fine-tune everything with an L2 penalty toward the starting weights (L2-SP)."""

    options_model = L2SPOptions

    def apply(self, model: nn.Module, backbone: Backbone) -> nn.Module:
        opts = L2SPOptions.model_validate(self.options)
        self.alpha, self.beta = opts.alpha, opts.beta
        heads = tuple(f"{h}." for h in backbone.head_names(model))
        model.requires_grad_(True)
        # The parameter objects themselves: accelerate moves their data, not them, so these stay the model's.
        self.body = [(p, p.detach().clone()) for n, p in model.named_parameters() if not n.startswith(heads)]
        self.head = [p for n, p in model.named_parameters() if n.startswith(heads)]
        return model

    def penalty(self) -> torch.Tensor:
        """alpha/2 * squared distance of the backbone from its start + beta/2 * squared norm of the head."""
        import torch

        device = self.head[0].device
        if self.body and self.body[0][1].device != device:  # the model moved to the accelerator's device
            self.body = [(p, start.to(device)) for p, start in self.body]
        drift = sum(((p - start) ** 2).sum() for p, start in self.body) if self.body else torch.zeros((), device=device)
        size = sum((p**2).sum() for p in self.head)
        return 0.5 * self.alpha * drift + 0.5 * self.beta * size

    def extra_loss(self, model: nn.Module, batch: dict[str, torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
        return self.penalty()

    def parameter_groups(self, model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        return super().parameter_groups(model, 0.0)  # the penalty takes weight decay's place
