"""The usage snippet: the Python code a model card or an export README shows to load a saved model.

A backbone describes how its plain library loads what :meth:`Backbone.save`
wrote (:meth:`Backbone.usage` returns a :class:`Usage`); this module turns
that into one code block, adding what is the same for every backbone: peft's
``PeftModel.from_pretrained`` when the run saved adapters, the activation of
the task (softmax, sigmoid or none), and a ``predict(inputs)`` function
returning the labels and scores. The block is the single source of truth: the
card shows it, and the tests execute it as written against ``tl predict``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Usage", "render_usage", "usage_markdown"]


@dataclass(frozen=True)
class Usage:
    """How a plain library loads a saved model directory and computes its logits.

    Each code field is a tuple of Python lines; they read the directory's path
    from the variable ``model_dir``, which :func:`render_usage` sets first.
    """

    #: The library whose loader reads the directory (the model card's ``library_name``).
    library: str
    #: Import lines (``import torch`` is always added).
    imports: tuple[str, ...]
    #: Lines that set ``model`` (and any preprocessing object, e.g. a tokenizer) from ``model_dir``.
    load: tuple[str, ...]
    #: An expression mapping a class index to its label name, evaluated after loading (e.g. ``model.config.id2label``).
    labels: str
    #: Lines, run under ``torch.no_grad()``, that set ``logits`` (``[len(inputs), num_labels]``) from ``inputs``.
    logits: tuple[str, ...]
    #: A Python literal: a list of example inputs for the closing ``print(predict(...))``.
    example: str
    #: False when the example names files the reader must supply (images): the call is shown as a comment.
    example_runs: bool = True


# What turns the logits into the scores tl predict reports, by task kind, and the predictions made from them.
_SCORES = {
    "classification": ("scores = logits.float().softmax(-1)",
                       "return [labels[i] for i in scores.argmax(-1).tolist()], scores"),
    "multi_label": ("scores = logits.float().sigmoid()",
                    "return [[labels[j] for j, s in enumerate(row) if s >= 0.5] for row in scores.tolist()], scores"),
    "regression": ("scores = logits.float()[:, 0]", "return scores.tolist(), scores"),
}


def render_usage(usage: Usage, model_dir: Path, problem_type: str = "classification",
                 adapters: Path | None = None) -> str:
    """The snippet's Python code: load ``model_dir``, define ``predict(inputs)``, call it on the example.

    Args:
        usage: the backbone's description, for the directory its ``save`` wrote (``model_dir``).
        model_dir: where that directory is.
        problem_type: the task kind (``classification``, ``multi_label``, ``regression``).
        adapters: a directory of peft adapters to put on the loaded model (a LoRA run's ``model/``), or None.
    """
    lines = ["import torch", *usage.imports]
    if adapters is not None:
        lines.append("from peft import PeftModel")
    lines += ["", f"model_dir = {json.dumps(str(model_dir))}", *usage.load]
    if adapters is not None:
        lines.append(f"model = PeftModel.from_pretrained(model, {json.dumps(str(adapters))})")
    scores, result = _SCORES.get(problem_type, _SCORES["classification"])
    lines += [
        "model.eval()", f"labels = {usage.labels}", "", "",
        "def predict(inputs):",
        '    """The predicted label of each input, and the scores tl predict reports."""',
        "    with torch.no_grad():",
        *(f"        {line}" for line in usage.logits),
        f"    {scores}", f"    {result}", "", "",
        f"{'' if usage.example_runs else '# '}print(predict({usage.example}))",
    ]
    return "\n".join(lines) + "\n"


def usage_markdown(usage: Usage | None, model_dir: Path, problem_type: str = "classification",
                   adapters: Path | None = None) -> list[str]:
    """The snippet as Markdown lines (a fenced ``python`` block), or nothing when the backbone gives none."""
    if usage is None:
        return []
    intro = (f"With {usage.library}" + (" and peft (the adapters on the base model in `base/`)" if adapters else "")
             + ", without tl_toolkit:")
    return [intro, "", "```python", render_usage(usage, model_dir, problem_type, adapters).rstrip(), "```", ""]
