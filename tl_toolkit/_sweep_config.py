"""The ``sweep:`` section of a recipe: what ``tl sweep`` searches, and how.

Only the schema lives here; the checks that need the rest of the recipe (is a
key a recipe key, does every value pass the schema and the plugin's options)
are in :mod:`tl_toolkit._sweep_space`, run by ``tl validate``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["SearchParam", "SweepConfig", "SweepResources"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchParam(_Section):
    """One dotted recipe key and the values a trial may give it."""

    type: Literal["float", "int", "categorical"] = Field(description="how Optuna samples the value")
    low: float | None = Field(None, description="float/int: the smallest value")
    high: float | None = Field(None, description="float/int: the largest value (included)")
    log: bool = Field(False, description="float/int: sample on a log scale (low must be > 0)")
    step: float | None = Field(None, description="float/int: a grid step (not with log)")
    choices: list[Any] | None = Field(None, description="categorical: the values to choose from")
    when: dict[str, Any] = Field(
        default_factory=dict,
        description="search this key only in trials where these keys (other space keys or recipe keys) "
        "have these values, e.g. {strategy.plugin: lora}",
    )

    @model_validator(mode="after")
    def _shape(self) -> SearchParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty list of choices")
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("a categorical parameter takes choices, not low/high/log/step")
            return self
        if self.choices is not None:
            raise ValueError(f"a {self.type} parameter takes low and high, not choices")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs both low and high")
        if self.low > self.high:
            raise ValueError(f"the range is empty: low {self.low} is above high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("give log or step, not both")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError(f"an int range needs whole bounds, got {self.low} and {self.high}")
        return self

    def corners(self) -> list[Any]:
        """The values that bound what a trial can get: both ends of a range, or every choice."""
        if self.type == "categorical":
            return list(self.choices or [])
        if self.type == "int":
            return [int(self.low or 0), int(self.high or 0)]
        return [float(self.low or 0.0), float(self.high or 0.0)]


class SweepResources(_Section):
    """What one trial holds while it runs (``--backend ray``); also sets its thread count."""

    cpu: float = Field(1, gt=0, description="CPU cores per trial; OMP_NUM_THREADS follows it")
    gpu: float = Field(0, ge=0, description="GPUs per trial; more than 1: the trial runs on that many processes")
    processes: int | None = Field(
        None, ge=1, description="processes per trial, started by `accelerate launch` (null: one per GPU, at least 1)"
    )

    @property
    def launched(self) -> int:
        """How many processes one trial runs on (1: in the worker itself, no launcher)."""
        return self.processes or max(1, int(self.gpu))


class SweepConfig(_Section):
    """``tl sweep``: an Optuna search over dotted recipe keys, each trial an ordinary run."""

    metric: str = Field("accuracy", description="the key of summary.json's eval to optimise")
    direction: Literal["maximize", "minimize"] = "maximize"
    trials: int = Field(12, ge=1, description="finished or pruned trials the study ends with")
    pruner: Literal["none", "median", "hyperband"] = Field(
        "median", description="stop trials whose per-epoch metric falls behind (none: run every trial to the end)"
    )
    sampler: Literal["tpe", "random"] = Field("tpe", description="Optuna's sampler, seeded from the recipe seed")
    space: dict[str, SearchParam] = Field(default_factory=dict, description="dotted recipe key -> its range")
    resources: SweepResources = Field(default_factory=SweepResources)
