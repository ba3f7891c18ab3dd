"""``distill``: a student learns from a finished teacher run's soft targets and from the labels.

Hinton et al. (2015): the teacher's probabilities at a raised temperature say
which wrong classes are nearly right, which the one-hot labels do not. The
loss is

    cross_entropy(student, labels) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

(``T^2`` keeps the soft term's gradients on the scale of the hard one). The
student, the recipe's backbone, trains in full. The teacher is a finished
run's directory (``strategy.options.teacher``); it reads the student's
batches, so it must share the student's backbone plugin and preprocessing
(tokenizer vocabulary, image size) and the task's labels, in the same order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tl_toolkit import Backbone, Strategy, UserError, resolve_run_dir

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["DistillOptions", "DistillStrategy"]


class DistillOptions(BaseModel):
    """Options of the ``distill`` strategy (``strategy.options``)."""

    model_config = ConfigDict(extra="forbid")

    teacher: str = Field(description="output_dir of a finished run whose model teaches")
    temperature: float = Field(2.0, gt=0, description="softens both distributions; higher shares more")
    alpha: float = Field(1.0, ge=0, description="weight of the soft-target term next to the label loss")

    @field_validator("teacher")
    @classmethod
    def _finished_run(cls, value: str) -> str:
        try:
            resolve_run_dir(value)
        except UserError:
            raise ValueError(f"{value!r} is not a finished run (no saved model in it); train the teacher first") from None
        return value


class DistillStrategy(Strategy):
    """Train the whole student on the labels plus the teacher's temperature-softened logits."""

    options_model = DistillOptions

    def apply(self, model: nn.Module, backbone: Backbone) -> nn.Module:
        from tl_toolkit import load_model_dir

        opts = DistillOptions.model_validate(self.options)
        self.temperature, self.alpha = opts.temperature, opts.alpha
        self.teacher = load_model_dir(opts.teacher, merge=True)
        if self.teacher.backbone.plugin_name != backbone.plugin_name:
            raise UserError(f"strategy.options.teacher: the teacher uses backbone "
                            f"{self.teacher.backbone.plugin_name!r}, the student {backbone.plugin_name!r}; "
                            f"it reads the student's batches, so they must match")
        self.teacher.model.requires_grad_(False).eval()
        model.requires_grad_(True)
        return model

    def teacher_logits(self, batch: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
        """The teacher's logits on the student's batch, without gradients."""
        import torch

        teacher = self.teacher.model.to(device)
        with torch.no_grad():
            return self.teacher.backbone.forward(teacher, batch).float()

    def extra_loss(self, model: nn.Module, batch: dict[str, torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        teacher = self.teacher_logits(batch, logits.device)
        if teacher.shape != logits.shape:
            raise UserError(f"strategy.options.teacher: the teacher predicts {teacher.shape[-1]} labels, the "
                            f"student {logits.shape[-1]}; distil within one task")
        if logits.ndim > 2:  # one score vector per token: distil on the tagged tokens only, not on padding
            keep = batch["labels"] != -100
            logits, teacher = logits[keep], teacher[keep]
        t = self.temperature
        soft = F.kl_div(F.log_softmax(logits.float() / t, -1), F.log_softmax(teacher / t, -1),
                        reduction="batchmean", log_target=True)
        return self.alpha * t * t * soft
