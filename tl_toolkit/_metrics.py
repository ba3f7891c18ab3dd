"""Classification metrics of a run's held-out data."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["classification_metrics"]


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    """Accuracy and macro-F1 (over the classes present in either labels or predictions)."""
    from sklearn.metrics import accuracy_score, f1_score

    if not y_true:
        return {"accuracy": 0.0, "f1_macro": 0.0}
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
