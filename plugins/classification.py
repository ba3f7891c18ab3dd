"""``classification``: one label per example (the default ``data.task``).

Labels are read as written (``3.0`` from a CSV is the label ``3``), or by name
from a ``datasets.ClassLabel`` column; label names sort numerically when they
are all integers. ``data.classes`` keeps only those labels,
``data.max_train_per_class`` caps each class, and held-out eval data is split
per class so every class lands in both splits. Softmax cross-entropy with
``train.class_weights`` and ``train.label_smoothing``; accuracy and macro-F1;
a per-class table and a confusion matrix in the report; ``tl predict`` answers
the most likely label and its probability (``--top-k`` for more).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tl_toolkit import TaskPlugin, UserError, plot_confusion_matrix

if TYPE_CHECKING:
    import datasets
    import torch

__all__ = ["ClassificationTask", "balanced_weights", "label_text"]

CONFUSION_PNG = "confusion_matrix.png"


class ClassificationTask(TaskPlugin):
    """One label per example: softmax cross-entropy, accuracy and macro-F1."""

    head = "classification"
    metric_goals = {"accuracy": "max", "f1_macro": "max"}

    class_weights: list[float] | None = None

    # -- labels --

    def encode(self, train: datasets.Dataset, evals: datasets.Dataset | None) -> tuple[
        datasets.Dataset, datasets.Dataset | None, list[str]
    ]:
        data = self.data
        train = _with_string_labels(train, data.label_column, "train", data.train)
        if evals is not None:
            evals = _with_string_labels(evals, data.label_column, "eval", data.eval)
        if data.classes:
            wanted = set(data.classes)
            present = set(train.unique("_label"))
            missing = [c for c in data.classes if c not in present]
            if missing:
                raise UserError(f"data.classes: {missing} do not occur in the training labels of {data.train!r}; "
                                f"labels there: {sorted(present)[:20]}")
            train = train.filter(lambda b: [v in wanted for v in b["_label"]], batched=True)
            if evals is not None:
                evals = evals.filter(lambda b: [v in wanted for v in b["_label"]], batched=True)
            names = list(data.classes)
        else:
            names = _sorted_labels(train.unique("_label"))
        if len(names) == 1:  # a one-class model is always right and learns nothing: refused
            if data.classes:
                raise UserError(f"data.classes: keeps only the class {names[0]!r}; a classifier needs at least two "
                                f"classes: list two or more, or leave data.classes out")
            raise UserError(f"data.label_column: the training data {data.train!r} holds a single class in label "
                            f"column {data.label_column!r} ({names[0]!r}); a classifier needs at least two classes: "
                            f"add examples of the others, or check data.label_column")
        if evals is not None:
            unseen = sorted(set(evals.unique("_label")) - set(names))
            if unseen:
                raise UserError(
                    f"data.eval: labels {unseen[:10]} in {data.eval!r} never occur in training data "
                    f"(training labels: {names[:20]}); fix the eval labels or set data.classes")
        index = {name: i for i, name in enumerate(names)}

        def encode(batch: dict[str, list[Any]]) -> dict[str, list[int]]:
            return {"labels": [index[v] for v in batch["_label"]]}

        train = train.map(encode, batched=True)
        evals = None if evals is None else evals.map(encode, batched=True)
        return train, evals, names

    def hold_out(self, train: datasets.Dataset, fraction: float, seed: int) -> tuple[
        datasets.Dataset, datasets.Dataset
    ]:
        """Split off ``fraction`` of each class: every class lands in both splits."""
        import numpy as np

        labels = np.array(train["_label"])
        rng = np.random.default_rng(seed)
        train_idx, eval_idx, rare = [], [], []
        for label in sorted(set(labels.tolist())):
            idx = np.flatnonzero(labels == label)
            if len(idx) < 2:
                rare.append(label)
                continue
            rng.shuffle(idx)
            n_eval = min(max(1, round(fraction * len(idx))), len(idx) - 1)
            eval_idx.extend(idx[:n_eval].tolist())
            train_idx.extend(idx[n_eval:].tolist())
        if rare:
            raise UserError(
                f"data.eval: classes {rare[:10]} have a single training example, too few to hold one out for "
                f"evaluation; give data.eval, add examples, or leave them out with data.classes")
        return train.select(sorted(train_idx)), train.select(sorted(eval_idx))

    def limit(self, train: datasets.Dataset) -> datasets.Dataset:
        cap = self.data.max_train_per_class
        if not cap:
            return train
        counts: dict[str, int] = {}
        keep = []
        for i, label in enumerate(train["_label"]):
            counts[label] = counts.get(label, 0) + 1
            if counts[label] <= cap:
                keep.append(i)
        return train.select(keep)

    def setup(self, label_names: list[str], train_labels: list[Any] | None = None) -> None:
        super().setup(label_names, train_labels)
        weights = None if self.train is None else self.train.class_weights
        if weights == "auto":
            weights = None if train_labels is None else balanced_weights(self.head, len(label_names), train_labels)
        elif weights is not None and len(weights) != len(label_names):
            raise UserError(f"train.class_weights: {len(weights)} weights for {len(label_names)} labels "
                            f"{list(label_names)[:20]}; give one per label, in that order, or 'auto'")
        self.class_weights = weights

    # -- training and evaluation --

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        logits = logits.float()
        weight = None if self.class_weights is None else torch.tensor(self.class_weights, device=logits.device)
        smoothing = 0.0 if self.train is None else self.train.label_smoothing
        return F.cross_entropy(logits, labels, weight=weight, label_smoothing=smoothing, reduction=reduction)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Class indices."""
        return logits.float().argmax(-1)

    def metrics(self, logits: list[torch.Tensor], labels: list[torch.Tensor]) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, f1_score

        truth, preds = self._outputs(logits, labels)
        if not truth:
            return {"accuracy": 0.0, "f1_macro": 0.0}
        return {"accuracy": float(accuracy_score(truth, preds)),
                "f1_macro": float(f1_score(truth, preds, average="macro", zero_division=0))}

    def _outputs(self, logits: list[torch.Tensor], labels: list[torch.Tensor]) -> tuple[list[int], list[int]]:
        import torch

        if not logits:
            return [], []
        return torch.cat(labels).tolist(), self.predict(torch.cat(logits)).tolist()

    def details(self, logits: list[torch.Tensor], labels: list[torch.Tensor]) -> dict[str, Any]:
        truth, preds = self._outputs(logits, labels)
        return {"labels": truth, "preds": preds}

    def summary(self, details: dict[str, Any]) -> dict[str, Any]:
        return {"per_class": class_metrics(details, self.label_names)}

    def report_lines(self, details: dict[str, Any], out_dir: Path, title: str) -> list[str]:
        per_class = class_metrics(details, self.label_names)
        lines: list[str] = []
        if per_class:
            lines += ["## Per-class metrics", "", "| label | precision | recall | F1 | support |",
                      "| --- | ---: | ---: | ---: | ---: |"]
            lines += [f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |"
                      for name, m in per_class.items()]
            lines.append("")
        if details.get("labels"):
            plot_confusion_matrix(details["labels"], details["preds"], self.label_names, out_dir / CONFUSION_PNG,
                                  f"{title}: confusion matrix ({len(details['labels'])} eval examples)")
            lines += ["## Confusion matrix", "", f"![confusion matrix]({CONFUSION_PNG})", ""]
        return lines

    # -- prediction --

    def answer(self, logits: torch.Tensor, labels: torch.Tensor, example: dict[str, Any], top_k: int = 1) -> dict[
        str, Any
    ]:
        probs = logits.float().softmax(-1)
        scores, ids = probs.topk(min(top_k, probs.shape[-1]))
        s_row, i_row = scores.tolist(), ids.tolist()
        row: dict[str, Any] = {"label": self.label_names[i_row[0]], "score": round(s_row[0], 6)}
        if top_k > 1:
            row["top_k"] = [{"label": self.label_names[i], "score": round(s, 6)}
                            for s, i in zip(s_row, i_row, strict=True)]
        return row


def class_metrics(outputs: dict[str, list[int]], names: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each label on the eval data, by label name."""
    from sklearn.metrics import precision_recall_fscore_support

    if not outputs.get("labels"):
        return {}
    precision, recall, f1, support = precision_recall_fscore_support(
        outputs["labels"], outputs["preds"], labels=list(range(len(names))), zero_division=0)
    return {
        name: {"precision": round(float(p), 6), "recall": round(float(r), 6), "f1": round(float(f), 6),
               "support": int(s)}
        for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
    }


def balanced_weights(head: str, num_labels: int, labels: list[Any]) -> list[float]:
    """``auto`` weights: scikit-learn's balanced class weights, or negatives/positives per label (multi-label)."""
    import numpy as np

    if head == "multi_label":
        matrix = np.asarray(labels, dtype=float)
        positives = matrix.sum(0)
        return (np.clip((len(matrix) - positives) / np.maximum(positives, 1), 0.0, 100.0)).tolist()
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(np.asarray(labels))
    balanced = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=np.asarray(labels)),
                        strict=True))
    return [float(balanced.get(i, 1.0)) for i in range(num_labels)]


def _with_string_labels(ds: datasets.Dataset, column: str, split: str, where: str | None) -> datasets.Dataset:
    import datasets as hf

    feature = ds.features[column]
    if isinstance(feature, hf.ClassLabel):
        names = feature.names

        def to_str(batch: dict[str, list[Any]]) -> dict[str, list[str]]:
            return {"_label": [names[v] for v in batch[column]]}
    else:
        values = ds[column]
        bad = [i for i, v in enumerate(values) if v is None or (isinstance(v, float) and v != v)]
        if bad:
            raise UserError(f"data.{split}: {len(bad)} rows of {where!r} have no value in label column {column!r} "
                            f"(first at row {bad[0]}); fill or drop them")

        def to_str(batch: dict[str, list[Any]]) -> dict[str, list[str]]:
            return {"_label": [label_text(v) for v in batch[column]]}

    return ds.map(to_str, batched=True)


def label_text(value: Any) -> str:
    """A label as written: 3.0 read from a CSV with missing values elsewhere is the label 3."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _sorted_labels(values: list[str]) -> list[str]:
    try:
        return sorted(values, key=int)
    except ValueError:
        return sorted(values)
