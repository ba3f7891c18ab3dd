"""``ia3``: IA3 through peft, learned vectors that rescale the targets' activations; the head trains in full.

The fewest trainable parameters of the peft family: one vector per target.
Targets listed in ``feedforward_modules`` have their input scaled, the others
their output. Saving, loading and merging come from :class:`tl_toolkit.PeftStrategy`.

The vectors start at 1 and each moves at most about the learning rate per
Adam step, so at a LoRA learning rate they hardly leave 1 in a short run and
the result is the head's alone (0.62 on MiniLM/SST-2 at ``train.lr`` 5e-4,
like ``head-only``). ``lr_ratio`` therefore defaults to 10: at the SST-2
recipe's 5e-4 the vectors learn at 5e-3, within the 3e-3 (the IA3 paper) to
1e-2 (peft's sequence-classification example) that IA3 is trained with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from tl_toolkit import PeftOptions, PeftStrategy, UserError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["IA3Options", "IA3Strategy"]


class IA3Options(PeftOptions):
    """Options of the ``ia3`` strategy (``strategy.options``)."""

    feedforward_modules: list[str] = Field(
        default_factory=list, description="targets whose input (not output) is scaled; a subset of the targets"
    )
    lr_ratio: float = Field(
        10.0, gt=0, description="the vectors learn at train.lr times this; the head at train.lr"
    )


class IA3Strategy(PeftStrategy):
    """Train IA3 scaling vectors (peft) on the targets, and the head."""

    options_model = IA3Options

    def peft_config(self, options: Any, model: nn.Module, targets: list[str], head: list[str]) -> Any:
        from peft import IA3Config

        stray = [m for m in options.feedforward_modules if m not in targets]
        if stray:
            raise UserError(
                f"strategy.options.feedforward_modules: {stray} are not targets ({targets}); "
                f"list them in target_modules too"
            )
        return IA3Config(target_modules=targets, feedforward_modules=options.feedforward_modules,
                         modules_to_save=head)
