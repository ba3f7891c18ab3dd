"""``dora``: DoRA adapters as a third-party strategy plugin, on ``tl_toolkit.PeftStrategy``.

Declare it in the package's ``pyproject.toml``::

    [project.entry-points."tl_toolkit.strategies"]
    dora = "tl_dora:DoraStrategy"

Saving (adapter and head next to ``base/``), plain-peft reloading, merging for
``tl export``, target checks and no weight decay on DoRA's magnitudes come from the base.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tl_toolkit import PeftOptions, PeftStrategy


class DoraOptions(PeftOptions):
    r: int = Field(8, ge=1, description="rank of the direction update")
    alpha: float = Field(16, gt=0, description="scaling: the update is multiplied by alpha / r")


class DoraStrategy(PeftStrategy):
    """Train DoRA adapters (magnitude and low-rank direction) and the head."""

    options_model = DoraOptions

    def peft_config(self, options: Any, model: Any, targets: list[str], head: list[str]) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=options.r, lora_alpha=options.alpha, use_dora=True, target_modules=targets,
                          modules_to_save=head)
