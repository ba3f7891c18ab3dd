"""The ``bert`` backbone in depth: pooling, task kinds, length-grouped batches, truncation, offline models."""

from __future__ import annotations

import csv
import json
import logging
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, SST2, plain_predictions, run_tl

from tl_toolkit import BackboneConfig, DataConfig, Task, finetune
from tl_toolkit._registry import registry


def sst2_rows(n: int, start: int = 0) -> list[tuple[str, str]]:
    lines = (SST2 / "train.tsv").read_text(encoding="utf-8").splitlines()[1 + start:1 + start + n]
    return [tuple(line.split("\t")) for line in lines]  # type: ignore[misc]


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> str:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return str(path)


def bert(model: str | Path, **data: Any) -> Any:
    options = data.pop("options", {})
    return registry.get("backbone", "bert")(
        BackboneConfig(plugin="bert", model=str(model), options=options), DataConfig(format="csv", train="-", **data)
    )


def run(tmp_path: Path, model: Path, data: dict[str, Any], **sections: Any) -> Any:
    recipe = {
        "name": "text", "output_dir": str(tmp_path / "run"),
        "backbone": {"plugin": "bert", "model": str(model), **sections.pop("backbone", {})},
        "data": {"format": "csv", **data},
        "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3, **sections.pop("train", {})},
        **sections,
    }
    return finetune(recipe, quiet=True)


# -- pooling ------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_head_sits_on_mean_pooling(minilm_dir: Path) -> None:
    """all-MiniLM-L6-v2 ships 1_Pooling/config.json (mean): the head reads the mean of the token states."""
    import torch

    bb = bert("sentence-transformers/all-MiniLM-L6-v2")
    model = bb.build(Task(["neg", "pos"])).eval()
    assert model.pooling == "mean" and bb.head_names(model) == ["classifier"]
    batch = bb.collate(bb.preprocess(_ds(["a fine film", "dull , lifeless and far too long for its story"]),
                                     train=False).to_list())
    with torch.no_grad():
        hidden = model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        first_len = int(batch["attention_mask"][0].sum())
        expected = model.classifier(hidden[0, :first_len].mean(0))  # the padding of the short one is ignored
        assert torch.allclose(bb.forward(model, batch)[0], expected, atol=1e-5)


def test_plain_checkpoint_keeps_its_head_and_pooling_option_overrides(tiny_bert_dir: Path) -> None:
    from transformers import BertForSequenceClassification

    assert isinstance(bert(tiny_bert_dir).build(Task(["a", "b"])), BertForSequenceClassification)
    model = bert(tiny_bert_dir, options={"pooling": "max"}).build(Task(["a", "b", "c"]))
    assert model.pooling == "max" and model.classifier.out_features == 3


def test_pool_ignores_padding() -> None:
    import torch
    from tl_toolkit_plugins.bert_pooling import pool

    hidden = torch.tensor([[[1.0, -2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, "mean").tolist() == [[2.0, 1.0]]
    assert pool(hidden, mask, "max").tolist() == [[3.0, 4.0]]
    assert pool(hidden, mask, "cls").tolist() == [[1.0, -2.0]]


def test_pooled_run_saves_labels_and_plain_libraries_predict_the_same(tmp_path: Path, tiny_bert_dir: Path) -> None:
    rows = [[s, "positive" if y == "1" else "negative"] for s, y in sst2_rows(48)]
    train = write_csv(tmp_path / "train.csv", ["text", "label"], rows)
    result = run(tmp_path, tiny_bert_dir, {"train": train, "eval": train}, backbone={"options": {"pooling": "mean"}})
    model_dir = result.model_dir
    config = json.loads((model_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["label2id"] == {"negative": 0, "positive": 1}
    inputs = tmp_path / "in.txt"
    inputs.write_text("\n".join(r[0] for r in rows[:12]) + "\n")
    from tl_toolkit import predict

    ours = [row["label"] for row in predict(result.output_dir, [inputs])]
    assert ours == plain_predictions(model_dir, [str(inputs)])


@pytest.mark.slow
def test_text_quickstart_learns_the_reviews(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """recipes/quickstart_text.yaml, as shipped: packaged MiniLM, the repo's review set, a report."""
    monkeypatch.chdir(ROOT)  # the recipe's data paths are relative to the repository root
    result = finetune(ROOT / "recipes/quickstart_text.yaml", quiet=True, output_dir=str(tmp_path / "run"))
    assert result.summary["num_train_examples"] == 240 and result.summary["num_eval_examples"] == 80
    assert result.metrics["accuracy"] >= 0.9
    assert (tmp_path / "run" / "report.md").is_file() and (tmp_path / "run" / "model" / "1_Pooling").is_dir()


# -- task kinds -----------------------------------------------------------------


def test_sentence_pairs_train_end_to_end(tmp_path: Path, tiny_bert_dir: Path) -> None:
    rows = sst2_rows(64)
    pairs = [[a, b, "same" if ya == yb else "different"] for (a, ya), (b, yb) in zip(rows[::2], rows[1::2], strict=True)]
    train = write_csv(tmp_path / "pairs.csv", ["premise", "hypothesis", "label"], pairs)
    result = run(tmp_path, tiny_bert_dir, {"train": train, "text_column": "premise",
                                           "text_pair_column": "hypothesis", "eval_fraction": 0.25})
    assert result.summary["label_names"] == ["different", "same"]
    assert result.summary["num_eval_examples"] == 8

    bb = bert(tiny_bert_dir, text_pair_column="hypothesis", text_column="premise")
    bb.build(Task(["different", "same"]))
    encoded = bb.preprocess(_ds([p[0] for p in pairs[:4]], pair=[p[1] for p in pairs[:4]], text="premise"),
                            train=False)
    assert all(1 in types for types in encoded["token_type_ids"])  # the second sentence is marked as such


def test_multi_label_weights_positives_and_applies_each_labels_threshold(tmp_path: Path, tiny_bert_dir: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``class_weights: auto`` reaches the loss as negatives/positives per label; ``tl predict`` answers a label
    exactly when its probability reaches that label's ``data.threshold``."""
    import torch
    from tl_toolkit_plugins.multi_label import MultiLabelTask

    from tl_toolkit import predict

    rng = random.Random(0)
    tags = ["acting", "music", "plot"]
    rows = [[s, ",".join(t for t in tags if rng.random() < (0.2, 0.4, 0.6)[tags.index(t)])] for s, _ in sst2_rows(80)]
    rows[0][1] = "acting,music,plot"
    train = write_csv(tmp_path / "tags.csv", ["text", "label"], rows[:60])
    evals = write_csv(tmp_path / "eval.csv", ["text", "label"], rows[60:])
    weights_seen: list[Any] = []
    loss = MultiLabelTask.loss

    def spy_loss(self: MultiLabelTask, logits: Any, labels: Any, reduction: str = "mean") -> Any:
        weights_seen.append(self.pos_weight)
        return loss(self, logits, labels, reduction)

    monkeypatch.setattr(MultiLabelTask, "loss", spy_loss)
    thresholds = {"acting": 0.5, "music": 0.5, "plot": 0.3}
    result = run(tmp_path, tiny_bert_dir, {"train": train, "eval": evals, "task": "multi_label",
                                           "threshold": {"plot": 0.3}}, train={"class_weights": "auto"})
    assert result.label_names == tags
    assert set(result.metrics) == {"accuracy", "f1_macro", "f1_micro", "loss"}
    assert json.loads((result.model_dir / "config.json").read_text())["problem_type"] == "multi_label_classification"
    positives = [sum(t in r[1].split(",") for r in rows[:60]) for t in tags]
    expected = [(60 - p) / p for p in positives]
    assert weights_seen and all(w == pytest.approx(expected) for w in weights_seen), (weights_seen[0], expected)

    answer = MultiLabelTask.answer
    probs: list[list[float]] = []

    def spy_answer(self: MultiLabelTask, logits: Any, labels: Any, example: Any, top_k: int = 1) -> Any:
        probs.append(torch.as_tensor(logits).float().sigmoid().tolist())
        return answer(self, logits, labels, example, top_k)

    monkeypatch.setattr(MultiLabelTask, "answer", spy_answer)
    inputs = tmp_path / "in.txt"
    inputs.write_text("\n".join(r[0] for r in rows[60:]) + "\n")
    out = predict(result.output_dir, [inputs])
    assert len(out) == len(probs) == 20
    for row, p in zip(out, probs, strict=True):
        on = [t for t, q in zip(tags, p, strict=True) if q >= thresholds[t]]
        assert row["label"] == on and row["score"] == [round(p[tags.index(t)], 6) for t in on]
    decided = [p[2] for p in probs if 0.3 <= p[2] < 0.5]  # plot answered only because its threshold is 0.3
    assert decided, [p[2] for p in probs]


def test_regression_learns_the_target(tmp_path: Path, tiny_bert_dir: Path) -> None:
    """A learnable target (sentence length / 10): the eval predictions follow it, and beat predicting its mean."""
    import statistics

    train_rows = [[s, len(s.split()) / 10] for s, _ in sst2_rows(64)]
    eval_rows = [[s, len(s.split()) / 10] for s, _ in sst2_rows(48, start=64)]
    train = write_csv(tmp_path / "scores.csv", ["text", "score"], train_rows)
    evals = write_csv(tmp_path / "eval.csv", ["text", "score"], eval_rows)
    result = run(tmp_path, tiny_bert_dir, {"train": train, "eval": evals, "label_column": "score",
                                           "task": "regression"}, train={"lr": 1e-2, "epochs": 4})
    assert result.label_names == ["score"] and result.model.classifier.out_features == 1
    metrics = result.metrics
    variance = statistics.pvariance([r[1] for r in eval_rows])  # the error of always answering the mean
    assert metrics["pearson"] > 0.5 and metrics["spearman"] > 0.5, metrics
    assert metrics["mse"] < variance, (metrics, variance)
    report = (result.output_dir / "report.md").read_text()
    assert f"| {metrics['mse']:.4f} | {metrics['pearson']:.4f} |" in report
    assert "(strategy **full**) to predict score." in (result.model_dir / "README.md").read_text()


def test_objective_class_weights() -> None:
    import torch

    from tl_toolkit import RecipeError, UserError, load_recipe
    from tl_toolkit._tasks import make_task

    recipe = load_recipe({"name": "w", "backbone": {"plugin": "bert", "model": "m"},
                          "data": {"format": "csv", "train": "x"}, "train": {"class_weights": "auto"}})
    obj = make_task(recipe.data, recipe.train)  # the classification task plugin owns the loss now
    obj.setup(["a", "b"], [0, 0, 0, 1])
    assert obj.class_weights == pytest.approx([4 / 6, 4 / 2])  # n / (classes * count)
    logits, labels = torch.zeros(2, 2), torch.tensor([0, 1])
    # Equal logits: each example's loss is log 2, weighted by its class.
    assert float(obj.loss(logits, labels)) == pytest.approx(float(torch.log(torch.tensor(2.0))))
    with pytest.raises(UserError, match=r"train\.class_weights: 3 weights for 2 labels"):
        wrong = load_recipe(recipe, ["train.class_weights=[1, 2, 3]"])
        make_task(wrong.data, wrong.train).setup(["a", "b"])
    with pytest.raises(RecipeError, match=r"train\.class_weights"):
        load_recipe(recipe, ["train.class_weights=balanced"])


# -- the fast pipeline --------------------------------------------------------------


def test_length_grouped_batches_are_random_reproducible_and_tight() -> None:
    from tl_toolkit._sampling import LengthGroupedSampler

    rng = random.Random(0)
    lengths = [rng.randint(3, 60) for _ in range(1000)]
    sampler = LengthGroupedSampler(lengths, batch_size=16, seed=0)

    def batches(epoch: int) -> list[list[int]]:
        sampler.set_epoch(epoch)
        order = list(sampler)
        return [order[i:i + 16] for i in range(0, len(order), 16)]

    first = batches(0)
    assert sorted(i for b in first for i in b) == list(range(1000))  # every example once
    assert first == batches(0) and first != batches(1)  # fixed by (seed, epoch), new each epoch
    assert max(lengths[i] for i in first[0]) == max(lengths)  # the longest batch first
    padded = sum(16 * max(lengths[i] for i in b) for b in first)
    plain = sum(16 * max(lengths[s:s + 16]) for s in range(0, 1000, 16))
    assert padded < 0.6 * plain
    # Not sorted overall: batch lengths go up and down through the epoch.
    means = [sum(lengths[i] for i in b) / len(b) for b in first[1:-1]]
    assert means != sorted(means) and means != sorted(means, reverse=True)


def test_smaller_length_groups_mix_more_kinds_of_example_and_the_task_sets_the_default() -> None:
    """NER-like lengths (one-word lines beside long sentences): 50-batch groups make batches of one kind."""
    from tl_toolkit import load_recipe
    from tl_toolkit._sampling import LengthGroupedSampler
    from tl_toolkit._tasks import make_task
    from tl_toolkit._train_step import length_group_batches

    rng = random.Random(0)
    lengths = [rng.choice([rng.randint(1, 4), rng.randint(20, 40)]) for _ in range(6400)]

    def mixed_batches(group: int) -> int:
        order = list(LengthGroupedSampler(lengths, batch_size=32, seed=0, group_batches=group))
        batches = [order[i:i + 32] for i in range(0, len(order), 32)]
        return sum(min(lengths[i] for i in b) <= 4 < max(lengths[i] for i in b) for b in batches)

    assert mixed_batches(2) > 2 * mixed_batches(50)
    base = {"name": "g", "backbone": {"plugin": "bert", "model": "m"}, "data": {"format": "json", "train": "x"}}
    ner = load_recipe({**base, "data": {**base["data"], "task": "token_classification"}})
    sentences = load_recipe(base)
    assert length_group_batches(ner, make_task(ner.data, ner.train)) == 16
    assert length_group_batches(sentences, make_task(sentences.data, sentences.train)) == 50
    chosen = load_recipe(ner, ["train.length_group_batches=4"])
    assert length_group_batches(chosen, make_task(chosen.data, chosen.train)) == 4


def test_length_grouped_batches_through_accelerate_shards_and_epochs() -> None:
    """accelerate moves the sampler on with set_epoch and hands each process whole batches of the same order."""
    from accelerate.data_loader import prepare_data_loader
    from torch.utils.data import DataLoader

    from tl_toolkit._sampling import LengthGroupedSampler

    lengths = [(i * 37) % 50 + 1 for i in range(256)]

    def batches(processes: int, index: int, epoch: int) -> list[list[int]]:
        loader = DataLoader(list(range(256)), batch_size=8, sampler=LengthGroupedSampler(lengths, 8, seed=1))
        shard = prepare_data_loader(loader, num_processes=processes, process_index=index, put_on_device=False,
                                    use_seedable_sampler=True)
        shard.set_epoch(epoch)
        return [b.tolist() for b in shard]

    whole = batches(1, 0, epoch=2)
    assert whole != batches(1, 0, epoch=3)
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in whole]
    assert sum(spread) / len(spread) < 10  # random batches of 8 from lengths 1..50 spread about 38
    first, second = batches(2, 0, epoch=2), batches(2, 1, epoch=2)
    assert [b for pair in zip(first, second, strict=True) for b in pair] == whole


def test_truncation_warning_counts_examples(tiny_bert_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    bb = bert(tiny_bert_dir, max_length=8)
    bb.build(Task(["a", "b"]))
    texts = ["short one", "this sentence is certainly longer than eight tokens of text", "tiny",
             "another rather long sentence that the cap of eight tokens cuts"]
    with caplog.at_level(logging.WARNING):
        out = bb.preprocess(_ds(texts), train=True)
    assert "data.max_length=8 truncates 2 of 4 examples" in caplog.text
    assert max(len(ids) for ids in out["input_ids"]) == 8 and "_truncated" not in out.column_names
    assert bb.lengths(out) == [len(ids) for ids in out["input_ids"]]


def test_offline_missing_model_is_one_line_exit_2(tmp_path: Path) -> None:
    """A hub id neither local nor cached, offline: ``tl run`` says so in one sentence (exit 2) before it writes."""
    train = write_csv(tmp_path / "t.csv", ["text", "label"], [["good", 1], ["bad", 0], ["fine", 1], ["meh", 0]])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: offline\nbackbone: {{plugin: bert, model: someone/not-a-cached-model}}\n"
                      f"data: {{format: csv, train: {train}}}\noutput_dir: {tmp_path / 'out'}\n")
    proc = run_tl("run", recipe, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "tl run: error: backbone.model: 'someone/not-a-cached-model' is not a local directory and not in the "
        "Hugging Face cache, and HF_HUB_OFFLINE=1 forbids downloading it; give a local model directory"]
    assert not (tmp_path / "out").exists()


def _ds(texts: list[str], pair: list[str] | None = None, text: str = "text") -> Any:
    import datasets

    columns: dict[str, list[Any]] = {text: texts, "labels": [0] * len(texts)}
    if pair is not None:
        columns["hypothesis"] = pair
    return datasets.Dataset.from_dict(columns)
