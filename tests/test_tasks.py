"""Tasks as the third plugin axis: discovery, recipe checks, and a third-party task the core knows nothing of."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import tiny_text_recipe

from tl_toolkit import RecipeError, TaskPlugin, finetune, predict
from tl_toolkit._registry import PluginInfo, registry
from tl_toolkit._validate import validate


class MarginTask(TaskPlugin):
    """One label per example, trained with a multi-class hinge loss (a third party's task)."""

    head = "classification"
    metric_goals = {"hits": "max"}

    def encode(self, train: Any, evals: Any) -> tuple[Any, Any, list[str]]:
        names = sorted({str(v) for v in train[self.data.label_column]})
        index = {n: i for i, n in enumerate(names)}
        column = self.data.label_column

        def labels(ds: Any) -> Any:
            return ds.map(lambda b: {"labels": [index[str(v)] for v in b[column]]}, batched=True)

        return labels(train), None if evals is None else labels(evals), names

    def loss(self, logits: Any, labels: Any, reduction: str = "mean") -> Any:
        import torch.nn.functional as F

        per_example = F.multi_margin_loss(logits.float(), labels, reduction="none")
        return per_example if reduction == "none" else per_example.mean()

    def metrics(self, logits: list[Any], labels: list[Any]) -> dict[str, float]:
        import torch

        return {"hits": float((torch.cat(logits).argmax(-1) == torch.cat(labels)).float().mean())}

    def report_lines(self, details: dict[str, Any], out_dir: Path, title: str) -> list[str]:
        return ["## Margins", "", "trained with a hinge loss", ""]

    def answer(self, logits: Any, labels: Any, example: dict[str, Any], top_k: int = 1) -> dict[str, Any]:
        return {"label": self.label_names[int(logits.argmax())], "margin": round(float(logits.max()), 6)}


@pytest.fixture
def margin_task() -> Iterator[str]:
    """``margin`` registered in the process-wide registry, as an installed distribution's entry point would be."""
    plugins = registry._discover()["task"]
    MarginTask.plugin_name = "margin"
    plugins["margin"] = PluginInfo("task", "margin", "tests:MarginTask", "acme-tasks", "0.1", obj=MarginTask,
                                   loaded=True)
    try:
        yield "margin"
    finally:
        del plugins["margin"]


def test_recipe_checks_name_the_task(tmp_path: Path, tiny_bert_dir: Path) -> None:
    recipe = tiny_text_recipe("t", tmp_path / "out", tiny_bert_dir)
    with pytest.raises(RecipeError, match=r"data\.task: .*Unknown task plugin 'regresion'.*'regression'"):
        validate(recipe, ["data.task=regresion"])
    image = {"name": "i", "output_dir": str(tmp_path / "img"), "backbone": {"plugin": "resnet", "model": "resnet18",
             "pretrained": False}, "data": {"format": "digits", "task": "token_classification"}}
    with pytest.raises(RecipeError, match=r"data\.task: backbone 'resnet' cannot serve task 'token_classification'"):
        validate(image)
    with pytest.raises(RecipeError, match=r"train\.best_metric: task 'classification' reports no metric 'f1'\."):
        validate(recipe, ["train.best_metric=f1"])
    with pytest.raises(RecipeError, match=r"data\.task_options\.scheme: Input should be 'IOB2'"):
        validate(recipe, ["data.task=token_classification", "data.task_options={scheme: BIO}"])


def test_a_third_party_task_runs_end_to_end(margin_task: str, tmp_path: Path, tiny_bert_dir: Path) -> None:
    recipe = tiny_text_recipe("margin", tmp_path / "out", tiny_bert_dir, best_metric="hits")
    recipe["data"]["task"] = margin_task
    result = finetune(recipe, quiet=True)
    assert set(result.metrics) == {"hits", "loss"}
    assert result.summary["best_checkpoint"]["metric"] == "hits"
    assert "## Margins" in (result.output_dir / "report.md").read_text()
    text = tmp_path / "in.txt"
    text.write_text("a gorgeous film\n")
    [row] = predict(result.output_dir, [text])
    assert row["label"] in result.label_names and "margin" in row
