"""``PeftStrategy``: the base of strategies that train peft adapters.

A subclass supplies its options model (a subclass of :class:`PeftOptions`) and
:meth:`PeftStrategy.peft_config`, the peft configuration it builds; the rest
is inherited:

- target checks: every ``target_modules`` entry must name a module of the
  model, and an adapter type peft cannot put on a module is one user error;
- "no trainable adapter": a configuration that leaves nothing to train is refused;
- optimizer groups: the adapters' learning rate (``lr_ratio`` times ``train.lr``;
  the head keeps ``train.lr``), layer-wise lr decay (``layer_decay``), per-parameter
  lr scales (:meth:`PeftStrategy.lr_scale`, e.g. LoRA+), and no weight decay on
  scale parameters (:meth:`Strategy.no_decay`);
- saving in peft's adapter format (adapter plus trained head) next to
  ``base/``, the backbone's starting weights, so plain peft reloads the run:
  ``PeftModel.from_pretrained(<base/ loaded by its library>, model_dir)``;
- loading, and merging for ``tl export`` and ``backbone.init_from``.
"""

from __future__ import annotations

import copy
import json
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ._errors import UserError
from ._layers import block_index, blocks_of, in_head
from ._plugin_api import Backbone, Strategy, Task

if TYPE_CHECKING:
    from torch import nn

__all__ = ["PeftOptions", "PeftStrategy"]

#: peft's data-dependent initialisations rewrite the base weights when an adapter is created; a saved
#: adapter holds trained weights, so its configuration must say "plain" or a reload would redo them.
_INIT_KEYS = ("init_lora_weights", "init_weights")


class PeftOptions(BaseModel):
    """Options every peft-backed strategy takes (``strategy.options``); subclasses add their own."""

    model_config = ConfigDict(extra="forbid")

    target_modules: list[str] | None = Field(
        None, description="module names (or name suffixes) to adapt; null: the backbone's default targets"
    )
    layer_decay: float | None = Field(
        None, gt=0, le=1, description="layer-wise lr decay per block, head down (e.g. 0.8); null: one lr"
    )
    #: A subclass whose adapters need another rate than LoRA's at the same ``train.lr`` (IA3's vectors,
    #: LoHa's and LoKr's products with a zero factor) redeclares this field with its own default.
    lr_ratio: float = Field(
        1.0, gt=0, description="the adapters learn at train.lr times this; the head keeps train.lr"
    )


class PeftStrategy(Strategy):
    """Base class of strategies that train peft adapters and the head; the pretrained weights stay frozen.

    Subclasses set :attr:`options_model` and implement :meth:`peft_config`.
    """

    options_model: ClassVar[Any] = PeftOptions
    recompute_activations = True  # frozen backbone: activations are most of the memory left to save
    #: Name fragments of adapter parameters that are scales, not weights (no weight decay): DoRA's
    #: magnitude vectors (stored (1, C, 1, 1) for convolutions) and IA3's vectors.
    scale_parameters: ClassVar[tuple[str, ...]] = ("lora_magnitude_vector", "ia3_l")

    @abstractmethod
    def peft_config(self, options: Any, model: nn.Module, targets: list[str], head: list[str]) -> Any:
        """The peft configuration to wrap ``model`` with.

        Args:
            options: ``strategy.options`` validated by :attr:`options_model`.
            model: the backbone's model, not yet wrapped (to inspect the target modules).
            targets: the modules to adapt (the options' ``target_modules`` or the backbone's defaults).
            head: the head's module names: pass them as ``modules_to_save`` so the head trains in full.

        Raises:
            UserError: the options do not fit this model (name the option and the fix).
        """

    def default_targets(self, model: nn.Module, backbone: Backbone) -> list[str]:
        """The targets when ``target_modules`` is null: the backbone's LoRA targets."""
        return backbone.lora_targets(model)

    def lr_scale(self, name: str) -> float:
        """A multiplier of ``train.lr`` for trainable parameter ``name`` (1.0; LoRA+ raises it for ``lora_B``)."""
        return 1.0

    @property
    def opts(self) -> Any:
        return self.options_model.model_validate(self.options)

    def apply(self, model: nn.Module, backbone: Backbone) -> nn.Module:
        from peft import get_peft_model

        opts = self.opts
        targets = list(opts.target_modules or self.default_targets(model, backbone))
        names = [n for n, _ in model.named_modules()]
        missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
        if missing:
            raise UserError(
                f"strategy.options.target_modules: {missing} match no module of {backbone.describe()}; "
                f"e.g. {', '.join(backbone.lora_targets(model))}"
            )
        config = self.peft_config(opts, model, targets, backbone.head_names(model))
        self.blocks = None
        if opts.layer_decay is not None:  # blocks named on the plain model; peft's prefixes do not hide them
            self.blocks = blocks_of(backbone, model, "strategy.options.layer_decay")
        try:
            wrapped = get_peft_model(model, config)
        except (ValueError, TypeError) as e:
            raise UserError(
                f"strategy.options.target_modules: {self.plugin_name or type(self).__name__} cannot adapt "
                f"{targets} of {backbone.describe()} ({str(e).splitlines()[0]}); choose other modules"
            ) from None
        heads = tuple(backbone.head_names(model))
        self.heads = heads
        adapters = [n for n, p in wrapped.named_parameters() if p.requires_grad and not in_head(n, heads)]
        if not adapters:
            raise UserError(
                f"strategy.options: {self.plugin_name or type(self).__name__} left no trainable adapter on "
                f"{targets} of {backbone.describe()}; choose other target_modules"
            )
        return wrapped

    def no_decay(self, name: str, param: Any) -> bool:
        return super().no_decay(name, param) or any(part in name for part in self.scale_parameters)

    def parameter_groups(self, model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        """Groups by (lr scale, decay): ``lr_ratio`` off the head, layer-wise decay, :meth:`lr_scale`.

        No weight decay on scales (:meth:`no_decay`).
        """
        groups: dict[tuple[float, bool], list[Any]] = {}
        opts = self.opts
        layer_decay, blocks = opts.layer_decay, getattr(self, "blocks", None)
        heads = getattr(self, "heads", ())
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            scale = self.lr_scale(name) * (1.0 if in_head(name, heads) else opts.lr_ratio)
            index = block_index(name, blocks) if blocks else None
            if index is not None and layer_decay is not None and blocks:
                scale *= layer_decay ** (len(blocks) - index)
            groups.setdefault((scale, not self.no_decay(name, param)), []).append(param)
        return [
            {"params": params, "weight_decay": weight_decay if decays else 0.0, "lr_scale": scale}
            for (scale, decays), params in sorted(groups.items(), key=lambda item: item[0])
        ]

    def save(self, model: nn.Module, backbone: Backbone, directory: Path, task: Task) -> None:
        peft_model: Any = model  # a peft PeftModel, as apply() returned it
        if not backbone.adapters_load_plainly(peft_model.get_base_model()):
            # The plain library builds this model from its own modules (sentence-transformers): saved merged.
            backbone.save(copy.deepcopy(peft_model).merge_and_unload(), directory, task)
            return
        peft_model.save_pretrained(str(directory))  # the adapters and the trained head
        config_file = directory / "adapter_config.json"
        saved = json.loads(config_file.read_text())
        for key in _INIT_KEYS:  # trained weights follow: a reload must not initialise them again (PiSSA)
            if key in saved and not isinstance(saved[key], bool):
                saved[key] = True
        config_file.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
        base = copy.deepcopy(peft_model).unload()  # the starting weights, adapters removed
        backbone.save(base, directory / "base", task)

    def load(self, backbone: Backbone, directory: Path, merge: bool = False) -> nn.Module:
        from peft import PeftModel

        if not (directory / "adapter_config.json").is_file():  # saved merged (see save)
            return backbone.load(directory)
        model = PeftModel.from_pretrained(backbone.load(directory / "base"), str(directory))
        return model.merge_and_unload() if merge else model
