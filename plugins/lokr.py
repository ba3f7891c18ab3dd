"""``lokr``: Kronecker-product adapters through peft (LyCORIS LoKr); the head trains in full.

LoKr adapts linear layers and convolutions, so it works on ResNets as on
transformers. Saving, loading and merging come from :class:`tl_toolkit.PeftStrategy`.

The update is ``kron(w1, w2)``, and peft starts the small factor ``w1`` at zero:
its few entries each move one block of the update, so at a LoRA learning rate
the update grows several times slower than LoRA's and a short run ends at the
head's own accuracy (0.62 on MiniLM/SST-2 at ``train.lr`` 5e-4, like
``head-only``). ``lr_ratio`` therefore defaults to 10: the factors learn at 10
times ``train.lr``, the head at ``train.lr``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from tl_toolkit import PeftOptions, PeftStrategy

if TYPE_CHECKING:
    from torch import nn

__all__ = ["LoKrOptions", "LoKrStrategy"]


class LoKrOptions(PeftOptions):
    """Options of the ``lokr`` strategy (``strategy.options``)."""

    r: int = Field(8, ge=1, description="rank of the low-rank factor; higher adapts more, costs more")
    alpha: float = Field(8, gt=0, description="scaling: the update is multiplied by alpha / r")
    rank_dropout: float = Field(0.0, ge=0, lt=1, description="dropout of each rank during training")
    module_dropout: float = Field(0.0, ge=0, lt=1, description="probability of switching an adapter off for a step")
    lr_ratio: float = Field(
        10.0, gt=0, description="the factors learn at train.lr times this; the head at train.lr"
    )
    decompose_both: bool = Field(False, description="low-rank factorise the small Kronecker factor too")
    decompose_factor: int = Field(-1, description="the small factor's size; -1: as square as the shape allows")


class LoKrStrategy(PeftStrategy):
    """Train LoKr adapters (peft: Kronecker product of a small and a low-rank factor) and the head."""

    options_model = LoKrOptions

    def peft_config(self, options: Any, model: nn.Module, targets: list[str], head: list[str]) -> Any:
        from peft import LoKrConfig

        return LoKrConfig(r=options.r, alpha=options.alpha, rank_dropout=options.rank_dropout,
                          module_dropout=options.module_dropout, decompose_both=options.decompose_both,
                          decompose_factor=options.decompose_factor, target_modules=targets,
                          modules_to_save=head)
