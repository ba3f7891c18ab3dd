"""``lora``: low-rank adapters through peft; the classification head trains in full.

Variants are options passed to peft: DoRA (``use_dora``), rank-stabilised
scaling (``use_rslora``), data-dependent initialisation (``init_lora_weights:
pissa | olora``), and LoRA+ (``loraplus_lr_ratio``: ``lora_B`` learns that
many times faster). Saving, loading and merging come from
:class:`tl_toolkit.PeftStrategy`: peft's adapter format next to ``base/``, so
``PeftModel.from_pretrained(<base/ loaded>, model_dir)`` reloads the run.
Where peft cannot put adapters on what the plain library loads
(:meth:`Backbone.adapters_load_plainly`, e.g. a sentence-transformers model),
the adapters are merged and the model saved as the backbone saves any model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from tl_toolkit import PeftOptions, PeftStrategy, UserError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["LoraOptions", "LoraStrategy"]


class LoraOptions(PeftOptions):
    """Options of the ``lora`` strategy (``strategy.options``)."""

    r: int = Field(8, ge=1, description="rank of the adapters; higher adapts more, costs more")
    alpha: float = Field(16, gt=0, description="scaling: the update is multiplied by alpha / r")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the adapter input")
    use_dora: bool = Field(False, description="DoRA: learn each output's magnitude apart from its direction")
    use_rslora: bool = Field(False, description="rank-stabilised LoRA: scale by alpha / sqrt(r), not alpha / r")
    init_lora_weights: Literal["gaussian", "pissa", "olora"] | bool = Field(
        True, description="true: B = 0; gaussian; pissa / olora: from the weights' SVD / QR (linear layers only)"
    )
    loraplus_lr_ratio: float | None = Field(
        None, gt=0, description="LoRA+: lora_B's learning rate is train.lr times this (e.g. 16); null: one lr"
    )


class LoraStrategy(PeftStrategy):
    """Train low-rank adapters (peft LoRA, DoRA, rsLoRA, PiSSA, OLoRA, LoRA+) and the head."""

    options_model = LoraOptions

    def peft_config(self, options: Any, model: nn.Module, targets: list[str], head: list[str]) -> Any:
        from peft import LoraConfig

        if options.init_lora_weights in ("pissa", "olora"):
            convs = [n for n, m in model.named_modules() if _targeted(n, targets) and getattr(m, "weight", None)
                     is not None and m.weight.ndim > 2]
            if convs:
                raise UserError(
                    f"strategy.options.init_lora_weights: {options.init_lora_weights!r} initialises linear "
                    f"layers only, and {convs[0]} is a convolution; use true or gaussian on this backbone"
                )
        return LoraConfig(
            r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout, target_modules=targets,
            modules_to_save=head, use_dora=options.use_dora, use_rslora=options.use_rslora,
            init_lora_weights=options.init_lora_weights,
        )

    def lr_scale(self, name: str) -> float:
        ratio = self.opts.loraplus_lr_ratio
        return ratio if ratio is not None and ".lora_B." in name else 1.0


def _targeted(name: str, targets: list[str]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)
