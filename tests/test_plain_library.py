"""The model card's code, run as written, predicts what ``tl predict`` predicts, for every saved layout.

For each backbone x strategy x pooling a tiny run is trained once (module
fixtures), then the Python block of its ``model/README.md`` is executed as a
user would paste it, and its ``predict`` is called on 100 examples: labels
equal, probabilities within 1e-4, and no library may report missing or
unexpected weights while loading (``conftest.run_card``). For ``full`` runs the
README that ``tl export`` writes beside the exported model is run the same way.
``TL_PLAIN_TABLE``
names a file to which each case appends its row of the plain-library table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import CIFAR10, SST2

from tl_toolkit import export_run, predict
from tl_toolkit.testing import card_code, run_card

N_EXAMPLES = 100
TOLERANCE = 1e-4
STRATEGIES = ["full", "head-only", "lora"]
# "head": the model's own classification head on [CLS] (a checkpoint without sentence-transformers pooling).
POOLINGS = ["head", "mean", "max", "cls"]


@pytest.fixture(scope="module")
def sentences(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = [ln.split("\t")[0] for ln in (SST2 / "dev.tsv").read_text().splitlines()[1:N_EXAMPLES + 1]]
    file = tmp_path_factory.mktemp("inputs") / "sentences.txt"
    file.write_text("\n".join(lines) + "\n")
    return file


@pytest.fixture(scope="module")
def images() -> list[str]:
    return [str(p) for d in sorted((CIFAR10 / "test").iterdir()) for p in sorted(d.glob("*.jpg"))[:10]]


def _train(out: Path, backbone: dict, data: dict, strategy: str) -> Path:
    from tl_toolkit import finetune

    recipe = {"name": out.name, "output_dir": str(out), "backbone": backbone, "data": data,
              "strategy": {"plugin": strategy}, "train": {"epochs": 1, "batch_size": 16, "lr": 5e-3}}
    finetune(recipe, quiet=True)
    return out


def _text_data(n_train: int = 32) -> dict:
    return {"format": "csv", "train": str(SST2 / "train.tsv"), "eval": str(SST2 / "dev.tsv"),
            "text_column": "sentence", "max_train_samples": n_train, "max_eval_samples": 8, "max_length": 64}


def _compare(run: Path, inputs: list[str], plain_inputs: list[str], case: str, readme: Path | None = None) -> None:
    """The code of ``readme`` (default: the run's model card) against ``tl predict`` on the run."""
    expected = predict(run, inputs, top_k=100)
    assert len(expected) == N_EXAMPLES
    labels, scores = run_card(readme or run / "model" / "README.md", plain_inputs)
    names = [row["label"] for row in expected]
    label_names = json.loads((run / "summary.json").read_text())["label_names"]
    diff = 0.0
    for row, plain in zip(expected, scores.tolist(), strict=True):
        ours = {entry["label"]: entry["score"] for entry in row["top_k"]}
        assert len(ours) == len(plain) == len(label_names)
        diff = max(diff, *(abs(ours[label_names[i]] - p) for i, p in enumerate(plain)))
    agree = sum(a == b for a, b in zip(labels, names, strict=True))
    _record(readme or run / "model" / "README.md", case, agree, diff)
    assert agree == N_EXAMPLES, f"{case}: the card's code agrees with tl predict on {agree} of {N_EXAMPLES} labels"
    assert diff <= TOLERANCE, f"{case}: the card's code differs from tl predict by {diff:.3g}"


def _record(readme: Path, case: str, agree: int, diff: float) -> None:
    table = os.environ.get("TL_PLAIN_TABLE")
    if table:
        with open(table, "a", encoding="utf-8") as f:
            code = card_code(readme)
            library = next((lib for lib in ("peft", "sentence_transformers", "transformers", "timm")
                            if f"from {lib}" in code or f"import {lib}" in code), "?")
            f.write(f"| {case} | {library} | {agree}/{N_EXAMPLES} | {diff:.1e} |\n")


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_bert_card_code_predicts_like_tl_predict(strategy: str, pooling: str, sentences: Path, tiny_bert_dir: Path,
                                                 tmp_path: Path) -> None:
    options = {} if pooling == "head" else {"pooling": pooling}
    run = _train(tmp_path / f"bert-{strategy}-{pooling}", {"plugin": "bert", "model": str(tiny_bert_dir),
                                                           "options": options}, _text_data(), strategy)
    texts = sentences.read_text().splitlines()
    _compare(run, [str(sentences)], texts, f"bert | {strategy} | {pooling}")
    code = card_code(run / "model" / "README.md")
    assert ("SentenceTransformer" in code) == (pooling != "head")
    assert ("PeftModel" in code) == (strategy == "lora" and pooling == "head")  # pooled LoRA is saved merged
    if strategy == "full":  # tl export --format hf writes the same layout, and its README's code loads it
        exported = export_run(run, "hf")
        _compare(run, [str(sentences)], texts, f"bert export hf | {strategy} | {pooling}", exported / "README.md")


@pytest.mark.parametrize("pooling", ["head", "mean"])
def test_sentence_pair_card_code_predicts_like_tl_predict(pooling: str, tiny_bert_dir: Path, tmp_path: Path) -> None:
    """A run on pairs (``data.text_pair_column``): the card's ``predict`` takes ``(first, second)`` tuples."""
    import csv
    import itertools

    rows = [ln.split("\t") for ln in (SST2 / "dev.tsv").read_text().splitlines()[1:]]
    pairs = [(a[0], b[0], a[1]) for a, b in itertools.pairwise(rows)][:N_EXAMPLES + 32]
    file = tmp_path / "pairs.csv"
    with file.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("first", "second", "label"), *pairs])
    data = {"format": "csv", "train": str(file), "eval": str(file), "text_column": "first",
            "text_pair_column": "second", "max_train_samples": 32, "max_eval_samples": 8, "max_length": 48}
    options = {} if pooling == "head" else {"pooling": pooling}
    run = _train(tmp_path / f"pair-{pooling}", {"plugin": "bert", "model": str(tiny_bert_dir), "options": options},
                 data, "full")
    inputs = tmp_path / "inputs.csv"
    with inputs.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("first", "second"), *(p[:2] for p in pairs[:N_EXAMPLES])])
    _compare(run, [str(inputs)], [p[:2] for p in pairs[:N_EXAMPLES]], f"bert pairs | full | {pooling}")
    assert predict(run, examples=[p[:2] for p in pairs[:5]]) == predict(run, [str(inputs)])[:5]
    assert 'print(predict([("A man is playing a guitar.", "Someone is making music."), (' in card_code(
        run / "model" / "README.md")  # the card's own example is pairs


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_resnet_card_code_predicts_like_tl_predict(strategy: str, images: list[str], tmp_path: Path) -> None:
    data = {"format": "imagefolder", "train": str(CIFAR10 / "train"), "eval": str(CIFAR10 / "test"),
            "image_size": 32, "max_train_samples": 32, "max_eval_samples": 8}
    run = _train(tmp_path / f"resnet-{strategy}", {"plugin": "resnet", "model": "resnet18", "pretrained": False},
                 data, strategy)
    _compare(run, images, images, f"resnet | {strategy} | -")
    if strategy == "full":
        _compare(run, images, images, f"resnet export timm | {strategy} | -", export_run(run, "timm") / "README.md")


def test_minilm_mean_pooled_card_code_predicts_like_tl_predict(sentences: Path, minilm_dir: Path,
                                                               tmp_path: Path) -> None:
    """The default text model: all-MiniLM-L6-v2 keeps its mean pooling, and its card loads it as trained."""
    strategy = "full"
    run = _train(tmp_path / f"minilm-{strategy}", {"plugin": "bert", "model": str(minilm_dir)},
                 _text_data(n_train=32), strategy)
    assert (run / "model" / "modules.json").is_file()
    _compare(run, [str(sentences)], sentences.read_text().splitlines(), f"MiniLM-L6 | {strategy} | mean (auto)")


def test_run_card_fails_on_weights_the_card_leaves_random_even_after_a_quiet_run(tiny_bert_dir: Path,
                                                                                 tmp_path: Path) -> None:
    """The guard every case above relies on: a card whose library builds a random head does not pass.

    A bare encoder loaded as a sequence classifier (the card a pooled run had before the sentence-transformers
    layout) leaves ``classifier.*`` newly initialised; transformers says so in its load report, which
    ``run_card`` must hear although a quiet run earlier in the process turned transformers down to errors.
    """
    from tl_toolkit._quiet import quiet_libraries

    quiet_libraries(True)
    readme = tmp_path / "README.md"
    readme.write_text(
        "```python\nfrom transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
        f"model = AutoModelForSequenceClassification.from_pretrained({str(tiny_bert_dir)!r}, num_labels=2)\n"
        f"tokenizer = AutoTokenizer.from_pretrained({str(tiny_bert_dir)!r})\n\n"
        "def predict(texts):\n"
        "    logits = model(**tokenizer(texts, padding=True, return_tensors='pt')).logits\n"
        "    return logits.argmax(-1).tolist(), logits.softmax(-1)\n```\n")
    with pytest.raises(AssertionError, match=r"code loads weights that do not fit: \['classifier\.(weight|bias) +\| MISSING"):
        run_card(readme, ["a fine film"])
