"""``loha``: Hadamard-product adapters through peft (LyCORIS LoHa); the head trains in full.

LoHa adapts linear layers and convolutions, so it works on ResNets as on
transformers. Saving, loading and merging come from :class:`tl_toolkit.PeftStrategy`.

The update is ``(w1_a @ w1_b) * (w2_a @ w2_b)`` (element-wise), and peft starts
``w2_b`` at zero: each step of ``w2_b`` is multiplied by the small entries of the
other product, so at a LoRA learning rate the update grows about 15 times
slower than LoRA's and a short run ends at the head's own accuracy (0.62 on
MiniLM/SST-2 at ``train.lr`` 5e-4, like ``head-only``). ``lr_ratio`` therefore
defaults to 10: the factors learn at 10 times ``train.lr``, the head at ``train.lr``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from tl_toolkit import PeftOptions, PeftStrategy

if TYPE_CHECKING:
    from torch import nn

__all__ = ["LoHaOptions", "LoHaStrategy"]


class LoHaOptions(PeftOptions):
    """Options of the ``loha`` strategy (``strategy.options``)."""

    r: int = Field(8, ge=1, description="rank of the factors; higher adapts more, costs more")
    alpha: float = Field(8, gt=0, description="scaling: the update is multiplied by alpha / r")
    rank_dropout: float = Field(0.0, ge=0, lt=1, description="dropout of each rank during training")
    module_dropout: float = Field(0.0, ge=0, lt=1, description="probability of switching an adapter off for a step")
    lr_ratio: float = Field(
        10.0, gt=0, description="the factors learn at train.lr times this; the head at train.lr"
    )


class LoHaStrategy(PeftStrategy):
    """Train LoHa adapters (peft: Hadamard product of two low-rank updates) and the head."""

    options_model = LoHaOptions

    def peft_config(self, options: Any, model: nn.Module, targets: list[str], head: list[str]) -> Any:
        from peft import LoHaConfig

        return LoHaConfig(r=options.r, alpha=options.alpha, rank_dropout=options.rank_dropout,
                          module_dropout=options.module_dropout, target_modules=targets, modules_to_save=head)
