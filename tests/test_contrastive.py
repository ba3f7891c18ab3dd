"""Strategy ``contrastive``: balanced in-batch pairs, the cosine loss, the logistic head, resume inside the stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from tl_toolkit_plugins import contrastive_pairs
from tl_toolkit_plugins.contrastive_pairs import balanced_batches, cosine_pair_loss, stage_steps

from tl_toolkit import UserError, finetune, load_model_dir, load_recipe

pytestmark = pytest.mark.usefixtures("cache_in_tmp")


def test_batches_are_class_balanced_seeded_and_use_every_example_alike() -> None:
    labels = [0] * 6 + [1] * 10 + [2] * 3
    batches = balanced_batches(labels, batch_size=12, count=10, seed=3)
    assert batches == balanced_batches(labels, batch_size=12, count=10, seed=3)
    assert batches != balanced_batches(labels, batch_size=12, count=10, seed=4)
    for batch in batches:
        # 4 of each class, but class 2 has only 3 examples: each of them once a batch, none twice.
        assert [sum(labels[i] == c for i in batch) for c in range(3)] == [4, 4, 3]
        assert len(set(batch)) == len(batch)
    uses = [sum(b.count(i) for b in batches) for i in range(6)]  # class 0: 40 draws over 6 examples
    assert max(uses) - min(uses) <= 1
    assert stage_steps(num_examples=130, batch_size=16, passes=3) == 27  # linear in the examples


def test_cosine_pair_loss_pulls_same_labels_together_and_balances_pair_kinds() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    ideal = torch.tensor([[1.0, 0], [2.0, 0], [0, 1.0], [0, 3.0]])  # same label: parallel; different: orthogonal
    assert cosine_pair_loss(ideal, labels).item() == pytest.approx(0.0, abs=1e-7)
    collapsed = torch.ones(4, 2)  # all alike: positives perfect (0), negatives at cos 1 (1): mean of halves
    assert cosine_pair_loss(collapsed, labels).item() == pytest.approx(0.5)
    moved = torch.tensor([[1.0, 0.2], [1.0, -0.2], [0.2, 1.0], [-0.2, 1.0]], requires_grad=True)
    cosine_pair_loss(moved, labels).backward()
    assert moved.grad is not None and moved.grad.abs().sum() > 0


def _recipe(model: Path, out: Path, data: Path, **options: Any) -> dict[str, Any]:
    return {
        "name": "few", "output_dir": str(out), "seed": 0,
        "backbone": {"plugin": "bert", "model": str(model), "options": {"pooling": "mean"}},
        "data": {"format": "csv", "train": str(data / "train.tsv"), "eval": str(data / "dev.tsv"),
                 "text_column": "sentence", "max_train_per_class": 8, "max_eval_samples": 32, "max_length": 48},
        "strategy": {"plugin": "contrastive", "options": {"passes": 6, "batch_size": 8, "lr": 1e-3, **options}},
        "train": {"epochs": 2, "batch_size": 8, "lr": 1e-2, "checkpoint_every_steps": 4},
    }


def test_pair_stage_then_logistic_head_is_an_ordinary_run(tiny_bert_dir: Path, tmp_path: Path, sst2: Path) -> None:
    result = finetune(_recipe(tiny_bert_dir, tmp_path / "run", sst2), quiet=True)
    pre = result.summary["pretrain"]
    assert pre["pair_steps"] == 12 and pre["pairs_per_step"] == 28  # 6 passes of 16 examples, 2 batches of 8
    assert pre["last_loss"] < pre["first_loss"]
    assert pre["head"].startswith("logistic regression")
    assert result.summary["train_seconds"] >= pre["seconds"] > 0
    # The engine's loop ran no epoch: the head is the logistic regression, evaluated once on cached features.
    assert result.summary["feature_cache"]["used"]
    assert not (tmp_path / "run" / "checkpoints" / "epoch-1").exists()
    # Saved as the backbone's ordinary model: loaded back, it gives the evaluated predictions.
    loaded = load_model_dir(tmp_path / "run")
    torch.testing.assert_close(loaded.model.classifier.weight, result.model.classifier.weight.cpu())
    weight = result.model.classifier.weight
    torch.testing.assert_close(weight[0], -weight[1])  # one decision function split over the two logits


def test_resume_inside_the_pair_stage_matches_an_uninterrupted_run(
    tiny_bert_dir: Path, tmp_path: Path, sst2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = finetune(_recipe(tiny_bert_dir, tmp_path / "whole", sst2), quiet=True)
    real, calls = contrastive_pairs.cosine_pair_loss, []

    def dies_at_step_6(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 6:  # after the checkpoint of step 4
            raise KeyboardInterrupt
        return real(embeddings, labels)

    monkeypatch.setattr(contrastive_pairs, "cosine_pair_loss", dies_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        finetune(_recipe(tiny_bert_dir, tmp_path / "killed", sst2), quiet=True)
    monkeypatch.setattr(contrastive_pairs, "cosine_pair_loss", real)
    resumed = finetune(_recipe(tiny_bert_dir, tmp_path / "killed", sst2), quiet=True, resume=True)
    assert resumed.summary["pretrain"]["pair_steps"] == 12
    assert resumed.summary["pretrain"]["last_loss"] == pytest.approx(whole.summary["pretrain"]["last_loss"], abs=1e-5)
    torch.testing.assert_close(resumed.model.classifier.weight, whole.model.classifier.weight, atol=1e-4, rtol=1e-3)
    assert resumed.metrics["accuracy"] == whole.metrics["accuracy"]


def test_linear_head_is_trained_by_the_engine(tiny_bert_dir: Path, tmp_path: Path, sst2: Path) -> None:
    result = finetune(_recipe(tiny_bert_dir, tmp_path / "lin", sst2, head="linear", passes=2), quiet=True)
    assert result.summary["pretrain"]["head"].startswith("linear")
    assert [row["epoch"] for row in _evals(tmp_path / "lin")] == [1, 2]


def _evals(out: Path) -> list[dict[str, Any]]:
    import json

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "eval"]


@pytest.mark.parametrize(("change", "words"), [
    ({"backbone": {"options": {}}}, "needs pooled sentence embeddings"),  # the [CLS] pooler head of a bare BERT
    ({"data": {"task": "regression"}}, "trains single-label classifiers"),
])
def test_refused_where_it_does_not_apply(tiny_bert_dir: Path, tmp_path: Path, sst2: Path, change: dict[str, Any],
                                         words: str) -> None:
    recipe = _recipe(tiny_bert_dir, tmp_path / "no", sst2)
    for section, values in change.items():
        recipe[section] = {**recipe[section], **values}
    if "task" in change.get("data", {}):
        recipe["data"].pop("max_train_per_class")
        recipe["data"]["max_train_samples"] = 16
    with pytest.raises(UserError, match=words):
        finetune(recipe, quiet=True)


def test_plan_names_the_pair_stage(tiny_bert_dir: Path, tmp_path: Path, sst2: Path) -> None:
    from tl_toolkit._plan import format_plan, plan

    text = format_plan(plan(load_recipe(_recipe(tiny_bert_dir, tmp_path / "plan", sst2)), steps=1))
    assert "first stage:  contrastive pairs: 12 steps of up to 8 examples (6 passes over 16)" in text
    assert "the engine's loop runs no epoch" in text


@pytest.mark.parametrize("normalize", [True, False])
def test_head_reads_unit_embeddings_where_the_checkpoint_normalises(
    tiny_bert_dir: Path, tmp_path: Path, sst2: Path, normalize: bool
) -> None:
    """A checkpoint ending in ``Normalize`` (as all-MiniLM-L6-v2): the head is fitted on, and reads, unit vectors.

    The saved model keeps the step, so the card's sentence-transformers code predicts what ``tl predict`` does.
    """
    import json
    import shutil

    from tl_toolkit import predict
    from tl_toolkit.testing import run_card

    model = tmp_path / "st-model"
    shutil.copytree(tiny_bert_dir, model)
    (model / "1_Pooling").mkdir()
    (model / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32,
                                                                  "pooling_mode_mean_tokens": True}))
    (model / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    recipe = _recipe(model, tmp_path / "run", sst2, passes=2, normalize=normalize)
    recipe["backbone"]["options"] = {}  # the checkpoint's own pooling
    result = finetune(recipe, quiet=True)
    assert result.summary["pretrain"]["head"].endswith(", on unit-length embeddings") == normalize

    saved = tmp_path / "run" / "model"
    modules = [m["type"].rsplit(".", 1)[1] for m in json.loads((saved / "modules.json").read_text())]
    assert modules == ["Transformer", "Pooling", *(["Normalize"] if normalize else []), "Dense"]
    texts = [line.split("\t")[0] for line in (sst2 / "dev.tsv").read_text().splitlines()[1:33]]
    inputs = tmp_path / "sentences.txt"
    inputs.write_text("\n".join(texts) + "\n")
    ours = predict(tmp_path / "run", [inputs])
    labels, scores = run_card(saved / "README.md", texts)
    assert labels == [row["label"] for row in ours]
    assert scores.max(dim=-1).values.tolist() == pytest.approx([row["score"] for row in ours], abs=1e-5)
    # What the reloaded model's head reads: the pooled vector, at unit length exactly when the checkpoint normalises.
    loaded = load_model_dir(tmp_path / "run")
    batch = dict(loaded.backbone.tokenizer(texts[:4], padding=True, truncation=True, return_tensors="pt"))
    with torch.no_grad():
        pooled = loaded.backbone.embed(loaded.model.eval(), batch)
        logits = loaded.backbone.forward(loaded.model, batch)
        expected = loaded.model.classifier(torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled)
    torch.testing.assert_close(logits, expected)
    assert (pooled.norm(dim=-1) - 1).abs().max() > 0.1  # the raw pooled vectors are not unit already
