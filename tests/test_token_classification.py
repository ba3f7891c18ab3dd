"""The ``token_classification`` task: CoNLL data, tag alignment, entity metrics, predictions, saved model, export.

A tiny BERT (2 layers, width 32) with a word-piece vocabulary from CoNLL-2003
words (plus single characters, so rare words split into several pieces) and a
few hundred CoNLL sentences keep every test to seconds.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import SHARED

from tl_toolkit import UserError, finetune, load_recipe, predict
from tl_toolkit._cli import main
from tl_toolkit.testing import card_code, weights_must_fit

CONLL = SHARED / "conll2003"
SENTENCES = [  # CoNLL-style text: punctuation stands apart, as the tokenizer splits it anyway
    "EU rejects German call to boycott British lamb .",
    "Peter Blackburn met officials of the European Commission in Brussels on Thursday .",
    "Germany 's representative to the European Union 's veterinary committee Werner Zwingmann said .",
]


@pytest.fixture(scope="session")
def tiny_ner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer cased BERT whose vocabulary holds frequent CoNLL words, their characters and ``##`` pieces."""
    import string

    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out = tmp_path_factory.mktemp("tiny-ner")
    counts: dict[str, int] = {}
    for line in (CONLL / "train.jsonl").read_text().splitlines()[:3000]:
        for w in json.loads(line)["tokens"]:
            counts[w] = counts.get(w, 0) + 1
    chars = string.ascii_letters + string.digits + string.punctuation
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars),
             *sorted(w for w, n in counts.items() if n >= 4 and w not in chars)]
    # vocab=, not vocab_file=: under transformers 5 a vocab_file tokenizer maps every word to [UNK].
    tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(dict.fromkeys(vocab))}, do_lower_case=False)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _data(tmp: Path, n_train: int = 160, n_eval: int = 48) -> tuple[Path, Path]:
    train, dev = tmp / "train.jsonl", tmp / "dev.jsonl"
    train.write_text("\n".join((CONLL / "train.jsonl").read_text().splitlines()[:n_train]) + "\n")
    dev.write_text("\n".join((CONLL / "validation.jsonl").read_text().splitlines()[:n_eval]) + "\n")
    return train, dev


def ner_recipe(out: Path, model: Path, plugin: str = "full", **sections: dict) -> dict:
    train, dev = _data(out.parent)
    recipe = {
        "name": f"ner-{plugin}", "output_dir": str(out),
        "backbone": {"plugin": "bert", "model": str(model)},
        "data": {"format": "json", "train": str(train), "eval": str(dev), "task": "token_classification",
                 "text_column": "tokens", "label_column": "ner_tags", "max_length": 64},
        "strategy": {"plugin": plugin},
        "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "best_metric": "f1"},
    }
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    return recipe


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory: pytest.TempPathFactory, tiny_ner_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("ner") / "run"
    finetune(ner_recipe(out, tiny_ner_dir), quiet=True)
    return out


# -- data --------------------------------------------------------------------------------------------------------


def _load(data: dict, modality: str = "text"):
    from tl_toolkit._data import load_task_data
    from tl_toolkit._recipe import DataConfig

    return load_task_data(DataConfig.model_validate(data), modality, 0)


def test_conll_files_iob1_and_a_length_mismatch(tmp_path: Path) -> None:
    conll = tmp_path / "train.txt"
    conll.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP I-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP I-MISC\n"
                     "\nPeter NNP B-NP I-PER\nBlackburn NNP I-NP I-PER\n\n")
    base = {"format": "conll", "train": str(conll), "eval": str(conll), "task": "token_classification",
            "text_column": "tokens", "label_column": "ner_tags"}
    data = _load({**base, "task_options": {"scheme": "IOB1"}})
    assert data.label_names == ["O", "B-MISC", "B-ORG", "B-PER", "I-PER"]
    rows = {tuple(r["tokens"]): [data.label_names[i] for i in r["labels"]] for r in data.eval}
    assert rows[("EU", "rejects", "German")] == ["B-ORG", "O", "B-MISC"]  # IOB1 I- that starts an entity -> B-
    assert rows[("Peter", "Blackburn")] == ["B-PER", "I-PER"]

    ragged = tmp_path / "ragged.jsonl"
    ragged.write_text('{"tokens": ["a", "b"], "ner_tags": ["O", "O"]}\n{"tokens": ["c", "d"], "ner_tags": ["O"]}\n')
    with pytest.raises(UserError, match=r"data\.train: row 1 of '.*ragged\.jsonl' has 2 words and 1 tags"):
        _load({**base, "format": "json", "train": str(ragged), "eval": str(ragged)})
    bad = tmp_path / "bad.txt"
    bad.write_text("EU B-ORG\nrejects\n")
    with pytest.raises(UserError, match=r"line 2 of '.*bad\.txt' has one column"):
        _load({**base, "train": str(bad), "eval": str(bad)})


def test_first_sub_token_alignment_truncation_and_windows(tiny_ner_dir: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    import datasets

    from tl_toolkit import Task
    from tl_toolkit._recipe import DataConfig
    from tl_toolkit._registry import registry
    from tl_toolkit._tasks import make_task

    words = ["Zwingmann", "said", "EU", "."]
    raw = datasets.Dataset.from_dict({"tokens": [words], "labels": [[3, 0, 1, 0]]})
    names = ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]

    def prepared(max_length: int = 64, **options: object) -> datasets.Dataset:
        data = DataConfig(format="json", task="token_classification", text_column="tokens", max_length=max_length,
                          task_options=options)
        backbone = registry.get("backbone", "bert")(load_recipe(
            {"name": "x", "backbone": {"plugin": "bert", "model": str(tiny_ner_dir)}, "data": {"format": "json"}}
        ).backbone, data)
        backbone.build(Task(names, "token_classification"))
        task = make_task(data)
        task.setup(names)
        return task.prepare(backbone, raw, train=False)

    first = prepared()[0]
    pieces = len(first["input_ids"]) - 2 - 3  # [CLS] ... [SEP]; the three short words are one piece each
    assert pieces > 1, "Zwingmann splits into several pieces"
    assert first["labels"] == [-100, 3, *[-100] * (pieces - 1), 0, 1, 0, -100]
    every = prepared(label_all_tokens=True)[0]
    assert every["labels"] == [-100, 3, *[4] * (pieces - 1), 0, 1, 0, -100]  # later pieces of B-PER: I-PER

    with caplog.at_level(logging.WARNING):
        short = prepared(max_length=8)
    assert "losing" in caplog.text and "of 4 words" in caplog.text
    windows = prepared(max_length=8, long_sentences="window")
    assert len(windows) > 1 and len(short) == 1
    tagged = [t for row in windows["labels"] for t in row if t != -100]
    assert tagged == [3, 0, 1, 0]  # every word tagged once, in order


def test_training_loss_weighs_every_tagged_token_the_same_in_short_and_long_batches() -> None:
    """Length-grouped batches: a batch of short sentences must not weigh its tokens more than one of long ones."""
    import datasets
    import torch

    from tl_toolkit._recipe import DataConfig
    from tl_toolkit._tasks import make_task
    from tl_toolkit.testing import StubBackbone

    task = make_task(DataConfig(format="json", task="token_classification", text_column="tokens"))
    task.setup(["O", "B-PER"])

    class Words(StubBackbone):  # one token a word, between [CLS] and [SEP]
        def preprocess(self, ds: datasets.Dataset, train: bool) -> datasets.Dataset:
            return ds.map(lambda row: {"word_ids": [-1, *range(len(row["tokens"])), -1]})

    train = datasets.Dataset.from_dict({"tokens": [["a"], ["a", "b", "c", "d", "e", "f", "g"]],
                                        "labels": [[1], [0] * 7]})
    task.prepare(Words(), train, train=True)
    assert task.tags_per_example == 4.0  # (1 + 7) / 2
    torch.manual_seed(0)
    short_logits, short_labels = torch.randn(2, 3, 2), torch.tensor([[-100, 1, -100]] * 2)
    long_logits, long_labels = torch.randn(2, 9, 2), torch.tensor([[-100, *[0] * 7, -100]] * 2)
    for logits, labels in ((short_logits, short_labels), (long_logits, long_labels)):
        per_token = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="sum")
        # each tagged token weighs 1 / (2 sentences x 4 tags a sentence), whatever the batch's own count
        torch.testing.assert_close(task.loss(logits, labels), per_token / 8)
    # a per-batch mean would weigh the short batch's tokens 7x the long batch's
    assert not torch.allclose(task.loss(short_logits, short_labels),
                              torch.nn.functional.cross_entropy(short_logits.transpose(1, 2), short_labels))


def test_padding_free_rows_score_and_weigh_tokens_as_padded_batches(tiny_ner_dir: Path) -> None:
    """Training batches of one row per batch (no padding) give the padded batch's logits and its token mean."""
    import torch

    from tl_toolkit import Task
    from tl_toolkit._recipe import Recipe
    from tl_toolkit._registry import registry
    from tl_toolkit._tasks import make_task
    from tl_toolkit._train_step import padding_free_collate

    recipe = Recipe.model_validate(ner_recipe(tiny_ner_dir.parent / "unused", tiny_ner_dir))
    backbone = registry.get("backbone", "bert")(recipe.backbone, recipe.data)
    task = make_task(recipe.data, recipe.train)
    task.setup(["O", "B-PER", "I-PER"])
    model = backbone.build(Task(task.label_names, task.head))
    words = [s.split() for s in SENTENCES] * 3
    examples = [{**encoded, "labels": [-100] + [i % 3 for i in range(len(encoded["input_ids"]) - 2)] + [-100]}
                for encoded in (dict(backbone.tokenizer(w, is_split_into_words=True)) for w in words)]
    collate = padding_free_collate(recipe, backbone, task)
    assert collate is not None  # token_classification trains on padding-free rows by default
    padded, packed = backbone.collate(examples), collate(examples)
    assert packed["input_ids"].shape == (1, sum(len(e["input_ids"]) for e in examples))
    model.eval()
    with torch.no_grad():
        mask = padded["attention_mask"].bool()
        torch.testing.assert_close(backbone.forward(model, packed)[0], backbone.forward(model, padded)[mask])
        task.packed = True  # as the engine sets it: the loss is this batch's own mean over tagged tokens
        expected = torch.nn.functional.cross_entropy(backbone.forward(model, padded).transpose(1, 2),
                                                     padded["labels"])
        torch.testing.assert_close(task.loss(backbone.forward(model, packed), packed["labels"]), expected)
    model.train()  # dropout on: the row still trains
    backbone.forward(model, packed).sum().backward()
    assert model.classifier.weight.grad is not None
    off = Recipe.model_validate(ner_recipe(tiny_ner_dir.parent / "unused", tiny_ner_dir, train={"padding_free": False}))
    assert padding_free_collate(off, backbone, task) is None


# -- a run ---------------------------------------------------------------------------------------------------------


def test_run_reports_entity_metrics_and_saves_a_plain_transformers_model(ner_run: Path) -> None:

    summary = json.loads((ner_run / "summary.json").read_text())
    assert set(summary["eval"]) == {"f1", "precision", "recall", "accuracy", "loss"}
    assert summary["eval"]["accuracy"] > 0.6  # most words are O
    assert set(summary["per_type"]) <= {"PER", "LOC", "ORG", "MISC"} and summary["per_type"]
    assert summary["best_checkpoint"]["metric"] == "f1"
    report = (ner_run / "report.md").read_text()
    assert "## Per-entity-type metrics" in report and "| run | f1 | precision | recall | accuracy |" in report
    card = (ner_run / "model" / "README.md").read_text()
    assert "pipeline_tag: token-classification" in card
    namespace: dict = {}
    with weights_must_fit("the NER model card's code"):  # the card's own code block, as a user pastes it
        exec(card_code(ner_run / "model" / "README.md"), namespace)
    model = namespace["model"]
    assert type(model).__name__ == "BertForTokenClassification"
    assert model.config.id2label[0] == "O" and model.config.num_labels == len(summary["label_names"])
    _card_pipeline_matches_predict(ner_run, namespace)


def _card_pipeline_matches_predict(run: Path, namespace: dict) -> None:
    """The card's ``ner`` pipeline gives tl predict's entities on the card's own example lines."""
    import ast

    code = card_code(run / "model" / "README.md")
    lines = ast.literal_eval(code.split("print(ner(")[1].rsplit("))", 1)[0])
    text = run.parent / "card-lines.txt"
    text.write_text("\n".join(lines) + "\n")
    for row, theirs in zip(predict(run, [text]), namespace["ner"](lines), strict=True):
        assert [(e["type"], e["start"], e["end"]) for e in row["entities"]] == [
            (t["entity_group"], t["start"], t["end"]) for t in theirs]
        assert [e["score"] for e in row["entities"]] == pytest.approx([float(t["score"]) for t in theirs], abs=1e-5)


def test_eval_verb_matches_the_run(ner_run: Path) -> None:
    summary = json.loads((ner_run / "summary.json").read_text())
    assert main(["eval", str(ner_run)]) == 0
    result = json.loads((ner_run / "eval.json").read_text())
    assert result["eval"]["f1"] == pytest.approx(summary["eval"]["f1"], abs=1e-6)


@pytest.fixture(scope="module")
def varied_run(ner_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run with a random, large head: every tag gets predicted somewhere, so equality checks have teeth."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    out = tmp_path_factory.mktemp("varied") / "run"
    shutil.copytree(ner_run / "model", out / "model")
    shutil.copy(ner_run / "summary.json", out / "summary.json")  # a finished run
    weights = out / "model" / "model.safetensors"
    state = load_file(weights)
    torch.manual_seed(1)
    state["classifier.weight"] = torch.randn_like(state["classifier.weight"]) * 3
    save_file(state, weights, metadata={"format": "pt"})
    return out


def test_predict_entities_equal_the_transformers_pipeline(varied_run: Path, tmp_path: Path) -> None:
    from transformers import pipeline

    text = tmp_path / "text.txt"
    text.write_text("\n".join(SENTENCES) + "\n")
    ours = predict(varied_run, [text])
    assert sum(len(r["entities"]) for r in ours) >= 3
    for row in ours:
        for e in row["entities"]:
            assert row["input"][e["start"]:e["end"]] == e["text"]
    with weights_must_fit("transformers' token-classification pipeline"):
        first = pipeline("token-classification", model=str(varied_run / "model"), aggregation_strategy="first")
    for row, theirs in zip(ours, first(SENTENCES), strict=True):
        assert [(e["type"], e["start"], e["end"]) for e in row["entities"]] == [
            (t["entity_group"], t["start"], t["end"]) for t in theirs]
        assert [e["score"] for e in row["entities"]] == pytest.approx([float(t["score"]) for t in theirs], abs=1e-5)
    # "simple" reads a tag from every piece; it agrees where each word is a single piece only.
    simple = pipeline("token-classification", model=str(varied_run / "model"), aggregation_strategy="simple")
    words = " ".join(SENTENCES).split()
    one_piece = " ".join(w for w in words if len(first.tokenizer.tokenize(w)) == 1)
    assert len(one_piece.split()) >= 10
    [row] = predict(varied_run, [_lines(tmp_path, [one_piece])])
    assert [(e["type"], e["start"], e["end"]) for e in row["entities"]] == [
        (t["entity_group"], t["start"], t["end"]) for t in simple(one_piece)]


def _lines(tmp: Path, lines: list[str]) -> Path:
    path = tmp / "one.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_predict_words_column_gives_per_word_tags(ner_run: Path, tmp_path: Path) -> None:
    rows = tmp_path / "words.jsonl"
    rows.write_text(json.dumps({"tokens": SENTENCES[0].split()}) + "\n")
    [row] = predict(ner_run, [rows])
    names = json.loads((ner_run / "summary.json").read_text())["label_names"]
    assert len(row["tags"]) == len(SENTENCES[0].split()) and set(row["tags"]) <= set(names)
    # From Python, the same words as a list, and the line as a string, without files.
    assert predict(ner_run, examples=[SENTENCES[0].split()]) == [row]
    assert predict(ner_run, examples=SENTENCES[:2]) == predict(ner_run, [_lines(tmp_path, SENTENCES[:2])])


def test_onnx_export_matches_pytorch(ner_run: Path) -> None:
    assert main(["export", str(ner_run), "--format", "onnx"]) == 0
    meta = json.loads((ner_run / "export" / "onnx" / "export.json").read_text())
    assert meta["onnx_check"].startswith("onnxruntime") and meta["onnx_max_abs_diff"] < 1e-4
    config = json.loads((ner_run / "export" / "onnx" / "config.json").read_text())
    assert config["id2label"]["0"] == "O"


# -- strategies ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["lora", "head-only"])
def test_strategies_train_a_token_head(strategy: str, tiny_ner_dir: Path, tmp_path: Path) -> None:
    recipe = ner_recipe(tmp_path / "run", tiny_ner_dir, strategy, train={"epochs": 1, "best_metric": None})
    result = finetune(recipe, quiet=True)
    assert set(result.metrics) == {"f1", "precision", "recall", "accuracy", "loss"}
    tags = predict(result.output_dir, [_lines(tmp_path, SENTENCES[:1])])
    assert isinstance(tags[0]["entities"], list)
    import torch

    namespace: dict = {}
    with weights_must_fit(f"the {strategy} NER model card's code"):
        exec(card_code(result.model_dir / "README.md"), namespace)
    assert ("PeftModel" in card_code(result.model_dir / "README.md")) == (strategy == "lora")
    batch = namespace["tokenizer"](SENTENCES[:2], padding=True, return_tensors="pt")
    with torch.no_grad():  # the trained adapters and head, not a fresh head on the base model
        torch.testing.assert_close(namespace["model"](**batch).logits, result.model.eval()(**batch).logits)
    _card_pipeline_matches_predict(result.output_dir, namespace)


def test_distill_and_init_from_a_sentence_classifier(ner_run: Path, tiny_ner_dir: Path, tmp_path: Path) -> None:
    student = ner_recipe(tmp_path / "student", tiny_ner_dir, "distill", train={"epochs": 1, "best_metric": None},
                         strategy={"options": {"teacher": str(ner_run)}})
    assert finetune(student, quiet=True).metrics["accuracy"] > 0.5

    from conftest import SST2

    source = {"name": "src", "output_dir": str(tmp_path / "src"), "backbone": {"plugin": "bert", "model":
              str(tiny_ner_dir)}, "data": {"format": "csv", "train": str(SST2 / "train.tsv"), "eval": str(SST2 /
              "dev.tsv"), "text_column": "sentence", "max_train_samples": 32, "max_eval_samples": 16},
              "train": {"epochs": 1, "batch_size": 16}}
    finetune(source, quiet=True)
    target = ner_recipe(tmp_path / "target", tiny_ner_dir, train={"epochs": 1, "best_metric": None},
                        backbone={"init_from": str(tmp_path / "src")})
    result = finetune(target, quiet=True)
    assert result.summary["source"] and "f1" in result.metrics
