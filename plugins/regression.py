"""``regression``: one real number per example.

The label column holds numbers (an empty cell is an error naming the row);
the head has one output, trained on the mean squared error. Metrics: ``mse``
(lower is better), ``pearson`` and ``spearman`` (0 when either side is
constant). ``tl predict`` answers the value, under the target's name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tl_toolkit import TaskPlugin, UserError

if TYPE_CHECKING:
    import datasets
    import torch

__all__ = ["RegressionTask"]


class RegressionTask(TaskPlugin):
    """One real number per example: mean squared error; MSE, Pearson and Spearman."""

    head = "regression"
    metric_goals = {"mse": "min", "pearson": "max", "spearman": "max"}

    def encode(self, train: datasets.Dataset, evals: datasets.Dataset | None) -> tuple[
        datasets.Dataset, datasets.Dataset | None, list[str]
    ]:
        train = self._numbers(train, "train")
        return train, None if evals is None else self._numbers(evals, "eval"), [self.data.label_column]

    def _numbers(self, ds: datasets.Dataset, split: str) -> datasets.Dataset:
        column, where = self.data.label_column, getattr(self.data, split)
        bad = [i for i, v in enumerate(ds[column]) if v is None or (isinstance(v, float) and v != v)]
        if bad:
            raise UserError(f"data.{split}: {len(bad)} rows of {where!r} have no value in label column "
                            f"{column!r} (first at row {bad[0]}); fill or drop them")
        try:
            return ds.map(lambda b: {"labels": [_number(v) for v in b[column]]}, batched=True)
        except ValueError as e:
            raise UserError(f"data.{split}: label column {column!r} of {where!r}: {e}") from None

    def setup(self, label_names: list[str], train_labels: list[Any] | None = None) -> None:
        super().setup(label_names, train_labels)
        if self.train is not None and self.train.class_weights is not None:
            raise UserError("train.class_weights: a regression task has no classes; remove the key")

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        import torch.nn.functional as F

        return F.mse_loss(logits.float().squeeze(-1), labels.float(), reduction=reduction)

    def metrics(self, logits: list[torch.Tensor], labels: list[torch.Tensor]) -> dict[str, float]:
        import numpy as np
        import torch
        from scipy.stats import pearsonr, spearmanr

        true = torch.cat(labels).float().numpy().astype(float)
        pred = torch.cat(logits).float().squeeze(-1).numpy().astype(float)
        constant = len(true) < 2 or true.std() == 0 or pred.std() == 0
        return {"mse": float(np.mean((true - pred) ** 2)) if len(true) else 0.0,
                "pearson": 0.0 if constant else float(pearsonr(true, pred)[0]),
                "spearman": 0.0 if constant else float(spearmanr(true, pred)[0])}

    def placeholder_label(self) -> Any:
        return 0.0

    def answer(self, logits: torch.Tensor, labels: torch.Tensor, example: dict[str, Any], top_k: int = 1) -> dict[
        str, Any
    ]:
        return {"label": self.label_names[0], "score": round(float(logits.float().reshape(-1)[0]), 6)}


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number; data.task 'regression' needs numeric labels") from None
