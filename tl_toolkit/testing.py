"""Helpers for testing tl_toolkit plugins, public and stable: a plugin's tests need nothing else.

- :func:`check_plugin`: the contract check ``tl list`` runs, as an assertion.
- :func:`load_plugin`: a plugin looked up through the installed entry points, as a run does.
- :func:`registered`: a plugin class registered under a name for the duration of a ``with`` block
  (or a test), without installing a package.
- :func:`tiny_bert`, :func:`tiny_backbone`: tiny models built from a config (nothing is downloaded),
  behind the built-in ``bert`` and ``resnet`` backbones.
- :func:`tiny_text_data`, :func:`tiny_recipe`: a few labelled sentences, and a recipe that trains in
  seconds on them or on the built-in ``digits`` images.
- :class:`StubBackbone`: just enough of a backbone to unit-test a strategy on any ``nn.Module``.
- :func:`run_tl`: the real CLI in a subprocess, offline.
- :func:`card_code`, :func:`run_card`: the Python block of a model card, and that block executed as a
  user pastes it (what a backbone's ``usage`` promises, checked against ``tl predict``).
- :func:`weights_must_fit`: a block in which no plain library may report missing or unexpected weights.

Importing this module does not import torch.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._plugin_api import Backbone
from ._plugin_api import check_plugin as _check
from ._registry import GROUPS, PluginInfo, registry

__all__ = [
    "StubBackbone",
    "card_code",
    "check_plugin",
    "load_plugin",
    "registered",
    "run_card",
    "run_tl",
    "tiny_backbone",
    "tiny_bert",
    "tiny_recipe",
    "tiny_text_data",
    "weights_must_fit",
]

_WORDS = ["the", "a", "film", "movie", "is", "was", "good", "bad", "great", "awful", "fun", "dull", "not",
          "very", "and", "but", "it", "this", "of"]
_GOOD, _BAD = ["good", "great", "fun"], ["bad", "awful", "dull"]


def check_plugin(kind: str, obj: Any) -> None:
    """Assert that ``obj`` satisfies the ``kind`` (``backbone``, ``strategy`` or ``task``) plugin contract.

    Raises:
        AssertionError: with the reason ``tl list`` would show (a missing method, a mismatched
            signature, an unsupported plugin API version).
    """
    problem = _check(kind, obj)
    assert problem is None, f"{kind} plugin {getattr(obj, '__qualname__', obj)!r}: {problem}"


def load_plugin(kind: str, name: str) -> Any:
    """The plugin class installed as ``name`` in group ``tl_toolkit.<kind>s``, looked up as a run does.

    Raises:
        PluginError: not installed, or it failed to load (the error says why).
    """
    from ._registry import Registry

    return Registry().get(kind, name)  # a fresh look at the entry points, not the process's cached one


@contextmanager
def registered(kind: str, name: str, obj: Any, dist: str = "test", version: str = "0") -> Iterator[Any]:
    """Register ``obj`` as the ``kind`` plugin ``name`` inside the block; whatever was there comes back after.

    Runs in this process (``finetune``, ``tl_toolkit._cli.main``) see it; subprocesses do not.
    As a pytest fixture: ``with registered("strategy", "mine", Mine): yield``.

    Raises:
        AssertionError: ``obj`` does not satisfy the plugin contract.
    """
    if kind not in GROUPS:
        raise ValueError(f"kind must be one of {', '.join(GROUPS)}, got {kind!r}")
    check_plugin(kind, obj)
    plugins = registry._discover()[kind]
    before = plugins.get(name)
    previous_name = getattr(obj, "plugin_name", "")
    obj.plugin_name = name
    plugins[name] = PluginInfo(kind, name, f"{obj.__module__}:{obj.__qualname__}", dist, version, obj=obj,
                               loaded=True)
    try:
        yield obj
    finally:
        if before is None:
            plugins.pop(name, None)
        else:
            plugins[name] = before
        obj.plugin_name = previous_name


def tiny_bert(directory: str | Path) -> Path:
    """Save a 2-layer BERT (hidden size 32, a 24-token vocabulary) with its tokenizer, like a hub model.

    Built from a config with a fixed seed; a recipe uses it as ``backbone.model: <directory>``.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_WORDS]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(vocab_file=str(out / "vocab.txt"), do_lower_case=True).save_pretrained(out)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(out)  # a bare encoder, like a hub checkpoint
    return out


def tiny_backbone(plugin: str = "resnet", model: str | Path = "resnet18", **data: Any) -> Backbone:
    """A backbone plugin instance with random weights (``pretrained: false``), as a run would make it.

    ``data`` sets :class:`tl_toolkit.DataConfig` fields (default ``format``: ``digits`` for images,
    ``csv`` for text). E.g. ``tiny_backbone("bert", tiny_bert(tmp_path))`` or ``tiny_backbone("resnet")``.
    """
    from ._recipe import BackboneConfig, DataConfig

    cls = registry.get("backbone", plugin)
    data.setdefault("format", "digits" if cls.modality == "image" else "csv")
    if data["format"] == "digits":
        data.setdefault("image_size", 32)
    pretrained = plugin == "bert"  # a tiny_bert directory holds its random weights; others come from a config
    return cls(BackboneConfig(plugin=plugin, model=str(model), pretrained=pretrained), DataConfig(**data))


def tiny_text_data(directory: str | Path, n: int = 48) -> tuple[Path, Path]:
    """Write ``train.csv`` and ``eval.csv`` (columns ``text``, ``label``: positive or negative) of ``n`` rows each.

    The sentences use :func:`tiny_bert`'s words; the label follows the adjective, so a model can learn it.
    """
    import random

    rng = random.Random(0)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for split in ("train", "eval"):
        rows = ["text,label"]
        for _ in range(n):
            good = rng.random() < 0.5
            word = rng.choice(_GOOD if good else _BAD)
            rows.append(f"{rng.choice(['the film', 'this movie', 'it'])} {rng.choice(['is', 'was'])} "
                        f"{rng.choice(['', 'very '])}{word},{'positive' if good else 'negative'}")
        path = out / f"{split}.csv"
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def tiny_recipe(output_dir: str | Path, strategy: str = "full", backbone: str = "resnet",
                model: str | Path = "resnet18", **train: Any) -> dict[str, Any]:
    """A recipe (a dict for ``finetune`` or ``yaml.safe_dump``) that trains for one epoch in seconds.

    Images (``backbone="resnet"``): a random ResNet-18 on 64 built-in ``digits``. Text
    (``backbone="bert"``, ``model=tiny_bert(...)``): :func:`tiny_text_data` written next to ``output_dir``.
    ``train`` overrides keys of the recipe's ``train`` section.
    """
    out = Path(output_dir)
    recipe: dict[str, Any] = {
        "name": out.name or "tiny", "output_dir": str(out), "seed": 0,
        "strategy": {"plugin": strategy},
        "train": {"epochs": 1, "batch_size": 16, "lr": 1.0e-3, **train},
    }
    if backbone == "bert":
        train_file, eval_file = tiny_text_data(out.parent / f"{out.name}-data")
        recipe["backbone"] = {"plugin": "bert", "model": str(model)}
        recipe["data"] = {"format": "csv", "train": str(train_file), "eval": str(eval_file),
                          "text_column": "text", "label_column": "label"}
    else:
        recipe["backbone"] = {"plugin": backbone, "model": str(model), "pretrained": False}
        recipe["data"] = {"format": "digits", "train": "train", "eval": "test", "image_size": 32,
                          "max_train_samples": 64, "max_eval_samples": 32}
    return recipe


class StubBackbone(Backbone):
    """Just enough of a backbone to unit-test a strategy on a plain ``nn.Module``.

    ``head`` names the head modules (``head_names``), ``targets`` the adapter targets (``lora_targets``).
    """

    def __init__(self, head: list[str] | None = None, targets: list[str] | None = None) -> None:
        self.head, self.targets = head or [], targets or []
        self.config, self.data = None, None  # type: ignore[assignment]

    def build(self, task: Any, source: Any = None) -> Any:
        raise NotImplementedError

    def preprocess(self, dataset: Any, train: bool) -> Any:
        raise NotImplementedError

    def collate(self, examples: list[dict[str, Any]]) -> Any:
        raise NotImplementedError

    def forward(self, model: Any, batch: dict[str, Any]) -> Any:
        return model(batch["x"])

    def head_names(self, model: Any) -> list[str]:
        return list(self.head)

    def lora_targets(self, model: Any) -> list[str]:
        return list(self.targets)

    def save(self, model: Any, directory: Path, task: Any) -> None:
        raise NotImplementedError

    def load(self, directory: Path) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        return "stub"


def run_tl(*args: str | Path, cwd: str | Path = ".", timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """The real CLI (``python -m tl_toolkit``) in a subprocess, offline; returns the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "tl_toolkit", *map(str, args)], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )


# What the plain libraries say when weights do not fit the model they build (transformers' load report, peft,
# sentence-transformers, timm): a snippet that prints any of these loaded a different model than tl_toolkit saved.
_WEIGHT_PROBLEMS = re.compile(r"missing|unexpected|newly initiali[sz]ed|not initiali[sz]ed|not used|mismatch", re.I)


def card_code(readme: Path) -> str:
    """The Python code block of a model card or export README, exactly as a user copies it."""
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1, f"{readme} shows {len(blocks)} Python blocks"
    return blocks[0]


@contextmanager
def weights_must_fit(what: str = "the plain library") -> Iterator[None]:
    """Fail (AssertionError) if code run inside the block makes a library report weights that do not fit.

    Listens to what transformers (its load report), peft, sentence-transformers and timm say while loading:
    weights missing, unexpected, newly initialised or of mismatched shape. Wrap a plain-library load with it,
    e.g. ``with weights_must_fit(): PeftModel.from_pretrained(base, model_dir)``. ``what`` names the code in the
    failure message. Output the block prints is swallowed.
    """
    import contextlib
    import io
    import logging
    import warnings

    records: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = _Collect(logging.WARNING)
    # transformers' loggers do not propagate to the root logger: listen to each library's own as well.
    loggers = [logging.getLogger(name) for name in ("", "transformers", "sentence_transformers", "peft", "timm")]
    # A quiet run (finetune(quiet=True), tl predict) turns transformers down to errors, which would silence the
    # load report that names missing weights: each library speaks at WARNING inside the block.
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.WARNING:
            logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()) as out, \
                contextlib.redirect_stderr(io.StringIO()) as err:
            warnings.simplefilter("always")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
    said = [*records, *(str(w.message) for w in caught), out.getvalue(), err.getvalue()]
    problems = [line for text in said for line in text.splitlines() if _WEIGHT_PROBLEMS.search(line)]
    assert not problems, f"{what} loads weights that do not fit: {problems[:5]}"


def run_card(readme: Path, inputs: list[Any]) -> tuple[list[Any], Any]:
    """Execute the card's code as written (no tl_toolkit in it), then its ``predict`` on ``inputs``: (labels, scores).

    ``readme`` is a run's ``model/README.md`` or an export's README; ``inputs`` are texts or image paths.
    Fails (AssertionError, :func:`weights_must_fit`) when a library reports weights that are missing,
    unexpected or newly initialised while loading: the card would give a user a different model than the
    run saved.
    """
    namespace: dict[str, Any] = {"__name__": "__card__"}
    with weights_must_fit(f"{readme}'s code"):
        exec(compile(card_code(readme), str(readme), "exec"), namespace)
        labels, scores = namespace["predict"](inputs)
    return labels, scores
