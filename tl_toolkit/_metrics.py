"""The loss and the metrics of each task kind, in one place.

The engine trains on :meth:`Objective.loss` and evaluates with
:meth:`Objective.metrics`; ``tl eval`` and ``tl predict`` read the same
object, so a task kind (``data.task``) is defined here and nowhere else:

- ``classification``: softmax cross-entropy (class weights, label smoothing);
  accuracy and macro-F1.
- ``multi_label``: one sigmoid per label, binary cross-entropy (``auto``
  weights each label's positives by its negatives/positives ratio); a label is
  predicted when its probability reaches its threshold (``data.threshold``).
  ``accuracy`` is the exact-match ratio, ``f1_macro`` averages the labels.
- ``regression``: one output, mean squared error; ``mse``, ``pearson`` and
  ``spearman``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import UserError

if TYPE_CHECKING:
    import torch

    from ._recipe import Recipe

__all__ = ["Objective", "classification_metrics", "regression_metrics"]


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    """Accuracy and macro-F1 (over the classes present in either labels or predictions)."""
    from sklearn.metrics import accuracy_score, f1_score

    if not y_true:
        return {"accuracy": 0.0, "f1_macro": 0.0}
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def multi_label_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Exact-match accuracy, and macro- and micro-F1 over the labels, of 0/1 matrices ``[examples, labels]``."""
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "f1_micro": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
    }


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """Mean squared error and the Pearson and Spearman correlations (0 when either side is constant)."""
    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    true, pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    constant = len(true) < 2 or true.std() == 0 or pred.std() == 0
    return {
        "mse": float(np.mean((true - pred) ** 2)) if len(true) else 0.0,
        "pearson": 0.0 if constant else float(pearsonr(true, pred)[0]),
        "spearman": 0.0 if constant else float(spearmanr(true, pred)[0]),
    }


@dataclass
class Objective:
    """What a run optimises and reports, for one task kind (``data.task``)."""

    problem_type: str = "classification"
    label_names: Sequence[str] = ()
    class_weights: list[float] | None = None  # per class; per label (positive weight) for multi_label
    label_smoothing: float = 0.0
    threshold: float | dict[str, float] = 0.5  # multi_label: a probability, or one per label name

    @classmethod
    def for_run(cls, recipe: Recipe, label_names: Sequence[str], train_labels: Sequence[Any] | None = None,
                ) -> Objective:
        """The recipe's objective; ``train_labels`` resolve ``train.class_weights: auto``.

        Raises:
            UserError: class weights that do not fit the task or its labels.
        """
        weights = recipe.train.class_weights
        task = recipe.data.task
        if weights is not None and task == "regression":
            raise UserError("train.class_weights: a regression task has no classes; remove the key")
        if weights == "auto":
            weights = None if train_labels is None else _balanced_weights(task, len(label_names), train_labels)
        elif weights is not None and len(weights) != len(label_names):
            raise UserError(f"train.class_weights: {len(weights)} weights for {len(label_names)} labels "
                            f"{list(label_names)[:20]}; give one per label, in that order, or 'auto'")
        return cls(task, list(label_names), weights, recipe.train.label_smoothing, recipe.data.threshold)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """The task loss of a batch; ``reduction="none"`` gives one value per example."""
        import torch
        import torch.nn.functional as F

        logits = logits.float()
        weight = None if self.class_weights is None else torch.tensor(self.class_weights, device=logits.device)
        if self.problem_type == "regression":
            return F.mse_loss(logits.squeeze(-1), labels.float(), reduction=reduction)
        if self.problem_type == "multi_label":
            per_label = F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=weight, reduction="none")
            per_example = per_label.mean(-1)
            return per_example if reduction == "none" else per_example.mean()
        return F.cross_entropy(logits, labels, weight=weight, label_smoothing=self.label_smoothing,
                               reduction=reduction)

    def thresholds(self) -> list[float]:
        """multi_label: the probability each label needs to be predicted."""
        if isinstance(self.threshold, dict):
            return [self.threshold.get(name, 0.5) for name in self.label_names]
        return [self.threshold] * len(self.label_names)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Class indices (classification), 0/1 per label (multi_label) or values (regression)."""
        import torch

        logits = logits.float()
        if self.problem_type == "regression":
            return logits.squeeze(-1)
        if self.problem_type == "multi_label":
            return (logits.sigmoid() >= torch.tensor(self.thresholds(), device=logits.device)).long()
        return logits.argmax(-1)

    def metrics(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """The task's metrics over all held-out examples (``loss`` is added by the caller)."""
        preds = self.predict(logits).cpu()
        labels = labels.cpu()
        if self.problem_type == "regression":
            return regression_metrics(labels.float().tolist(), preds.tolist())
        if self.problem_type == "multi_label":
            return multi_label_metrics(labels.long().numpy(), preds.numpy())
        return classification_metrics(labels.tolist(), preds.tolist())


def _balanced_weights(task: str, num_labels: int, labels: Sequence[Any]) -> list[float]:
    """``auto`` weights: scikit-learn's balanced class weights, or negatives/positives per label."""
    import numpy as np

    if task == "multi_label":
        matrix = np.asarray(labels, dtype=float)
        positives = matrix.sum(0)
        return (np.clip((len(matrix) - positives) / np.maximum(positives, 1), 0.0, 100.0)).tolist()
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(np.asarray(labels))
    balanced = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=np.asarray(labels)),
                        strict=True))
    return [float(balanced.get(i, 1.0)) for i in range(num_labels)]
