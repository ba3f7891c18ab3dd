"""``multi_label``: any number of labels per example, one sigmoid output each.

A label cell is a list of names, or text with the names joined by
``data.label_separator``; an empty cell is an example with no label. Binary
cross-entropy (``train.class_weights: auto`` weights each label's positives by
its negatives/positives ratio); a label is predicted when its probability
reaches its threshold (``data.threshold``: one for all, or one per label).
``accuracy`` is the exact-match ratio, ``f1_macro`` and ``f1_micro`` average
over the labels. ``tl predict`` answers the list of predicted labels and their
probabilities.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tl_toolkit import TaskPlugin, UserError

if TYPE_CHECKING:
    import datasets
    import torch

__all__ = ["MultiLabelTask"]


class MultiLabelTask(TaskPlugin):
    """Any number of labels per example: binary cross-entropy per label, exact-match accuracy and F1."""

    head = "multi_label"
    metric_goals = {"accuracy": "max", "f1_macro": "max", "f1_micro": "max"}

    pos_weight: list[float] | None = None

    def encode(self, train: datasets.Dataset, evals: datasets.Dataset | None) -> tuple[
        datasets.Dataset, datasets.Dataset | None, list[str]
    ]:
        data = self.data
        names = data.classes or sorted({n for cell in train[data.label_column] for n in self._names(cell)})
        index = {n: i for i, n in enumerate(names)}
        unseen = [] if evals is None else sorted(
            {n for cell in evals[data.label_column] for n in self._names(cell)} - set(index))
        if unseen and not data.classes:
            raise UserError(f"data.eval: labels {unseen[:10]} in {data.eval!r} never occur in training data "
                            f"(training labels: {names[:20]}); fix the eval labels or set data.classes")

        def multi_hot(cell: Any) -> list[float]:
            row = [0.0] * len(names)
            for n in self._names(cell):
                if n in index:
                    row[index[n]] = 1.0
            return row

        column = data.label_column
        train = train.map(lambda b: {"labels": [multi_hot(v) for v in b[column]]}, batched=True)
        if evals is not None:
            evals = evals.map(lambda b: {"labels": [multi_hot(v) for v in b[column]]}, batched=True)
        return train, evals, list(names)

    def _names(self, cell: Any) -> list[str]:
        """The label names in one cell: a list, or text joined by ``data.label_separator``."""
        if cell is None or (isinstance(cell, float) and cell != cell):
            return []
        parts = cell if isinstance(cell, list) else str(cell).split(self.data.label_separator)
        return [p for p in (str(x).strip() for x in parts) if p]

    def setup(self, label_names: list[str], train_labels: list[Any] | None = None) -> None:
        from tl_toolkit_plugins.classification import balanced_weights

        super().setup(label_names, train_labels)
        weights = None if self.train is None else self.train.class_weights
        if weights == "auto":
            weights = None if train_labels is None else balanced_weights(self.head, len(label_names), train_labels)
        elif weights is not None and len(weights) != len(label_names):
            raise UserError(f"train.class_weights: {len(weights)} weights for {len(label_names)} labels "
                            f"{list(label_names)[:20]}; give one per label, in that order, or 'auto'")
        self.pos_weight = weights

    def thresholds(self) -> list[float]:
        """The probability each label needs to be predicted."""
        threshold = self.data.threshold
        if isinstance(threshold, dict):
            return [threshold.get(name, 0.5) for name in self.label_names]
        return [threshold] * len(self.label_names)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        logits = logits.float()
        weight = None if self.pos_weight is None else torch.tensor(self.pos_weight, device=logits.device)
        per_label = F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=weight, reduction="none")
        per_example = per_label.mean(-1)
        return per_example if reduction == "none" else per_example.mean()

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """0/1 per label."""
        import torch

        logits = logits.float()
        return (logits.sigmoid() >= torch.tensor(self.thresholds(), device=logits.device)).long()

    def metrics(self, logits: list[torch.Tensor], labels: list[torch.Tensor]) -> dict[str, float]:
        import torch
        from sklearn.metrics import accuracy_score, f1_score

        truth, preds = torch.cat(labels).long().numpy(), self.predict(torch.cat(logits)).numpy()
        return {"accuracy": float(accuracy_score(truth, preds)),
                "f1_macro": float(f1_score(truth, preds, average="macro", zero_division=0)),
                "f1_micro": float(f1_score(truth, preds, average="micro", zero_division=0))}

    def placeholder_label(self) -> Any:
        return [0.0] * len(self.label_names)

    def answer(self, logits: torch.Tensor, labels: torch.Tensor, example: dict[str, Any], top_k: int = 1) -> dict[
        str, Any
    ]:
        probs = logits.float().sigmoid().tolist()
        on = [i for i, flag in enumerate(self.predict(logits.unsqueeze(0))[0].tolist()) if flag]
        return {"label": [self.label_names[i] for i in on], "score": [round(probs[i], 6) for i in on]}
