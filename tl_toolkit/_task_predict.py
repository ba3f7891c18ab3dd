"""``tl predict`` for the multi-label and regression tasks (``data.task``).

A multi-label model answers with every label whose sigmoid reaches its
threshold (``label``: a list of names, ``score``: their probabilities); a
regression model with its value (``label``: the target's name, ``score``: the
value). Single-label classification stays in ``_predict.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._metrics import Objective
from ._pipeline import LoadedModel

__all__ = ["predict_other_task"]


def predict_other_task(
    loaded: LoadedModel, inputs: Sequence[str | Path], *, column: str | None = None, batch_size: int = 64
) -> list[dict[str, Any]]:
    """One dict per example: ``input``, ``label`` and ``score`` as described above."""
    import torch
    from torch.utils.data import DataLoader

    from ._predict import read_inputs

    data = loaded.backbone.data
    objective = Objective(data.task, loaded.label_names, threshold=data.threshold)
    ds, shown = read_inputs(inputs, loaded, column)
    placeholder = 0.0 if data.task == "regression" else [0.0] * len(loaded.label_names)
    ds = loaded.backbone.preprocess(ds.add_column("labels", [placeholder] * len(ds)), train=False)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = loaded.model.to(device)
    out: list[dict[str, Any]] = []
    with torch.no_grad():
        for batch in DataLoader(ds, batch_size=batch_size, collate_fn=loaded.backbone.collate):
            logits = loaded.backbone.forward(model, {k: v.to(device) for k, v in batch.items()}).float().cpu()
            for row_logits, row_pred in zip(logits, objective.predict(logits), strict=True):
                out.append({"input": shown[len(out)], **_answer(objective, row_logits, row_pred)})
    return out


def _answer(objective: Objective, logits: Any, pred: Any) -> dict[str, Any]:
    if objective.problem_type == "regression":
        return {"label": objective.label_names[0], "score": round(float(pred), 6)}
    probs = logits.sigmoid().tolist()
    on = [i for i, flag in enumerate(pred.tolist()) if flag]
    return {"label": [objective.label_names[i] for i in on], "score": [round(probs[i], 6) for i in on]}
