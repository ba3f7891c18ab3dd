"""``lora``: low-rank adapters through peft; the classification head trains in full.

The saved model is peft's adapter format (``adapter_config.json``,
``adapter_model.safetensors``, holding the head too) next to ``base/``, the
backbone's starting weights in its own ecosystem's format, so the adapter
loads with plain peft: ``PeftModel.from_pretrained(<base/ loaded>, model_dir)``.
Where peft cannot put adapters on what the plain library loads
(:meth:`Backbone.adapters_load_plainly`, e.g. a sentence-transformers model),
the adapters are merged and the model saved as the backbone saves any model.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from tl_toolkit import Backbone, Strategy, Task, blocks_of, layerwise_groups

if TYPE_CHECKING:
    from torch import nn

__all__ = ["LoraOptions", "LoraStrategy"]


class LoraOptions(BaseModel):
    """Options of the ``lora`` strategy (``strategy.options``)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, ge=1, description="rank of the adapters; higher adapts more, costs more")
    alpha: float = Field(16, gt=0, description="scaling: the update is multiplied by alpha / r")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the adapter input")
    target_modules: list[str] | None = Field(
        None, description="module names (or name suffixes) to adapt; null: the backbone's default targets"
    )
    layer_decay: float | None = Field(
        None, gt=0, le=1, description="layer-wise lr decay per block, head down (e.g. 0.8); null: one lr"
    )


class LoraStrategy(Strategy):
    """Train low-rank adapters (peft LoRA) and the head; the pretrained weights stay frozen."""

    options_model = LoraOptions
    recompute_activations = True  # frozen backbone: activations are most of the memory left to save

    def apply(self, model: nn.Module, backbone: Backbone) -> nn.Module:
        from peft import LoraConfig, get_peft_model

        from tl_toolkit import UserError

        opts = LoraOptions.model_validate(self.options)
        targets = opts.target_modules or backbone.lora_targets(model)
        names = [n for n, _ in model.named_modules()]
        missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
        if missing:
            raise UserError(
                f"strategy.options.target_modules: {missing} match no module of {backbone.describe()}; "
                f"e.g. {', '.join(backbone.lora_targets(model))}"
            )
        config = LoraConfig(
            r=opts.r,
            lora_alpha=opts.alpha,
            lora_dropout=opts.dropout,
            target_modules=targets,
            modules_to_save=backbone.head_names(model),
        )
        self.layer_decay = opts.layer_decay
        if self.layer_decay is not None:  # blocks named on the plain model; peft's prefixes do not hide them
            self.blocks = blocks_of(backbone, model, "strategy.options.layer_decay")
        return get_peft_model(model, config)

    def parameter_groups(self, model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        if self.layer_decay is None:
            return super().parameter_groups(model, weight_decay)
        return layerwise_groups(model, self.blocks, weight_decay, self.layer_decay)

    def save(self, model: nn.Module, backbone: Backbone, directory: Path, task: Task) -> None:
        if not backbone.adapters_load_plainly(model.get_base_model()):
            backbone.save(copy.deepcopy(model).merge_and_unload(), directory, task)
            return
        model.save_pretrained(str(directory))  # the adapters and the trained head
        base = copy.deepcopy(model).unload()  # the starting weights, adapters removed
        backbone.save(base, directory / "base", task)

    def load(self, backbone: Backbone, directory: Path, merge: bool = False) -> nn.Module:
        from peft import PeftModel

        if not (directory / "adapter_config.json").is_file():  # saved merged
            return backbone.load(directory)
        model = PeftModel.from_pretrained(backbone.load(directory / "base"), str(directory))
        return model.merge_and_unload() if merge else model
