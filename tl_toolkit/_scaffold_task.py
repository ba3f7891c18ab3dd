"""The template ``tl new-plugin NAME --kind task`` writes: a task plugin and its tests.

A task owns what a label *is* (``tl_toolkit.TaskPlugin``). The template is a
working one, small enough to read at once: one real number per example, trained
on the Huber loss and reported as the mean absolute error, with ``delta`` as its
``data.task_options``. Its tests use public API only and train it end to end on
the built-in digits, whose labels are numbers.
"""

from __future__ import annotations

__all__ = ["TASK", "TASK_TEST"]

TASK = '''"""``{name}``: a tl_toolkit task.

Installed, it is found through the ``tl_toolkit.tasks`` entry point in
``pyproject.toml``; a recipe uses it with ``data.task: {name}`` and sets its
options under ``data.task_options``.

As written: one real number per example (``data.label_column``), trained on the
Huber loss, reported as the mean absolute error (edit me).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from tl_toolkit import TaskPlugin, UserError

if TYPE_CHECKING:
    import datasets
    import torch

__all__ = ["{cls}", "{cls}Options"]


class {cls}Options(BaseModel):
    """``data.task_options`` of ``{name}``: validated by ``tl validate``."""

    model_config = ConfigDict(extra="forbid")

    delta: float = Field(1.0, gt=0, description="Huber loss: squared below this error, linear above it")


class {cls}(TaskPlugin):
    """One real number per example: Huber loss, mean absolute error (edit me)."""

    head = "regression"  # the head the backbone builds: one of tl_toolkit.HEAD_KINDS
    options_model = {cls}Options
    metric_goals = {{"mae": "min"}}  # which way each metric improves (train.best_metric may name it)
    plugin_api = {api}  # the tl_toolkit plugin API version(s) this plugin supports

    def encode(self, train: datasets.Dataset, evals: datasets.Dataset | None) -> tuple[
        datasets.Dataset, datasets.Dataset | None, list[str]
    ]:
        column = self.data.label_column

        def numbers(ds: datasets.Dataset, split: str) -> datasets.Dataset:
            try:
                return ds.map(lambda b: {{"labels": [float(v) for v in b[column]]}}, batched=True)
            except (TypeError, ValueError):
                raise UserError(f"data.{{split}}: label column {{column!r}} of {{getattr(self.data, split)!r}} "
                                f"holds a value that is not a number; data.task {name} needs numbers") from None

        return numbers(train, "train"), None if evals is None else numbers(evals, "eval"), [column]

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        import torch.nn.functional as F

        return F.huber_loss(logits.float().squeeze(-1), labels.float(), delta=self.options.delta,
                            reduction=reduction)

    def metrics(self, logits: list[torch.Tensor], labels: list[torch.Tensor]) -> dict[str, float]:
        import torch

        if not logits:
            return {{"mae": 0.0}}
        errors = torch.cat(logits).float().squeeze(-1) - torch.cat(labels).float()
        return {{"mae": float(errors.abs().mean())}}

    def placeholder_label(self) -> Any:
        return 0.0

    def answer(self, logits: torch.Tensor, labels: torch.Tensor, example: dict[str, Any], top_k: int = 1) -> dict[
        str, Any
    ]:
        return {{"label": self.label_names[0], "score": round(float(logits.float().reshape(-1)[0]), 6)}}
'''

TASK_TEST = '''"""Tests of the ``{name}`` task: it is registered, validates its options, computes its loss and metric,
and trains end to end.

Only public tl_toolkit API: ``tl_toolkit`` and ``tl_toolkit.testing``.
"""

from __future__ import annotations

import pytest
import torch

from tl_toolkit import DataConfig, UserError, finetune, predict
from tl_toolkit.testing import check_plugin, load_plugin, registered, tiny_recipe
from {module} import {cls}


def test_registered_through_its_entry_point() -> None:
    check_plugin("task", {cls})
    assert load_plugin("task", "{name}") is {cls}


def test_options_are_validated() -> None:
    assert {cls}.option_problems({{"delta": 0.5}}) == []
    [problem] = {cls}.option_problems({{"delta": -1}})
    assert problem.startswith("data.task_options.delta")


def test_loss_and_metric() -> None:
    task = {cls}(DataConfig(format="digits", task_options={{"delta": 1.0}}))
    logits, labels = torch.tensor([[0.5], [4.0]]), torch.tensor([0.0, 1.0])
    torch.testing.assert_close(task.loss(logits, labels), torch.tensor((0.5 * 0.5**2 + (3.0 - 0.5)) / 2))
    assert task.metrics([logits], [labels]) == {{"mae": pytest.approx(1.75)}}


def test_labels_that_are_not_numbers_are_refused() -> None:
    import datasets

    task = {cls}(DataConfig(format="csv", train="train.csv", label_column="y"))
    with pytest.raises(UserError, match="label column 'y'"):
        task.encode(datasets.Dataset.from_dict({{"y": ["cat"]}}), None)


def test_trains_end_to_end(tmp_path) -> None:
    recipe = tiny_recipe(tmp_path / "run")
    recipe["data"]["task"] = "{name}-under-test"  # the digits' labels 0-9, read as numbers
    with registered("task", "{name}-under-test", {cls}):
        result = finetune(recipe, quiet=True)
        [row] = predict(result.output_dir, [recipe_image(tmp_path)])
    assert result.metrics["mae"] >= 0.0
    assert isinstance(row["score"], float)


def recipe_image(folder) -> str:
    from PIL import Image

    path = folder / "digit.png"
    Image.new("RGB", (8, 8), (200, 200, 200)).save(path)
    return str(path)
'''
