"""A classification head on pooled token states, for checkpoints trained with mean or max pooling.

A sentence-transformers checkpoint (all-MiniLM-L6-v2 and its kin) was trained
to make the *mean* of its token states meaningful; its [CLS] pooler, which
``AutoModelForSequenceClassification`` puts the head on, never was. On such a
checkpoint a head on the [CLS] pooler learns little while the encoder stays
frozen (head-only, LoRA). :class:`PooledClassifier` is the bare encoder
(``AutoModel``), the checkpoint's own pooling over the attention mask, and a
linear head; it imports torch, so ``bert.py`` imports it only when it builds
or loads such a model.

On disk (``save_pooled`` / ``load_pooled``) the model is a sentence-transformers
model, so ``SentenceTransformer(model_dir).encode(texts)`` returns its logits:
``modules.json`` lists the encoder (its ``save_pretrained`` files at the top,
``config.json`` carrying ``id2label``), the pooling (``1_Pooling/config.json``)
a ``Normalize`` module when the head reads unit-length embeddings
(:attr:`PooledClassifier.normalize`, set by strategies that fit the head on the
checkpoint's normalised sentence embeddings), and the head as a ``Dense`` layer
with the Identity activation
(``2_Dense/``: ``config.json``, ``model.safetensors`` with ``linear.weight`` and
``linear.bias``); ``sentence_bert_config.json`` holds ``data.max_length``. The
files are plain JSON and safetensors, written here without sentence-transformers.
Runs saved before this layout (the head in ``classifier.safetensors``) still load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

__all__ = ["DENSE_DIR", "HEAD_FILE", "POOLING_FILE", "PooledClassifier", "is_pooled", "load_pooled", "normalizes",
           "pool", "save_pooled"]

HEAD_FILE = "classifier.safetensors"  # the head in runs saved before the sentence-transformers layout
POOLING_FILE = "1_Pooling/config.json"
DENSE_DIR = "2_Dense"
# The sentence-transformers pipeline: encoder (files at the top), pooling, [normalisation,] the head as a Dense layer.
_ENCODER = {"path": "", "type": "sentence_transformers.models.Transformer"}
_POOLING = {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
_NORMALIZE = {"path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}  # no files, as in the hub's
_DENSE = {"path": DENSE_DIR, "type": "sentence_transformers.models.Dense"}
# sentence-transformers' pooling flags, in the order they are read: the first one set wins.
_ST_FLAGS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean",
             "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}


def pooling_from_st_config(config: dict[str, Any]) -> str | None:
    """``mean``, ``cls`` or ``max`` from a sentence-transformers ``1_Pooling/config.json``."""
    return next((mode for flag, mode in _ST_FLAGS.items() if config.get(flag)), None)


def normalizes(directory: Path) -> bool:
    """Whether the sentence-transformers model in ``directory`` scales its embeddings to unit length (``Normalize``)."""
    modules = directory / "modules.json"
    return modules.is_file() and any(m.get("type", "").endswith(".Normalize") for m in json.loads(modules.read_text()))


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """One vector per sequence: the mean or max over real (unpadded) tokens, or the first ([CLS]) token."""
    if mode == "cls":
        return hidden[:, 0]
    keep = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(keep == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1e-9)


class PooledClassifier(nn.Module):
    """An encoder, a pooling of its token states, dropout, and a linear head.

    With ``normalize`` set the head reads the pooled vectors scaled to unit
    length, as a sentence-transformers model with a ``Normalize`` module
    embeds sentences.
    The forward pass takes the tokenizer's output and returns a
    ``SequenceClassifierOutput`` like the transformers classification classes,
    so the rest of the ``bert`` plugin treats both alike.
    """

    base_model_prefix = "encoder"  # where the transformer sits, as on a transformers model (block_names reads it)

    def __init__(self, encoder: nn.Module, pooling: str, num_labels: int, normalize: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.normalize = normalize
        config: Any = encoder.config
        self.dropout = nn.Dropout(getattr(config, "classifier_dropout", None) or getattr(config, "hidden_dropout_prob",
                                                                                         0.1))
        self.classifier = nn.Linear(config.hidden_size, num_labels)

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict[str, Any] | None = None) -> None:
        """Recompute the encoder's activations in the backward pass (``train.gradient_checkpointing``)."""
        if hasattr(self.encoder, "activation_checkpointing_enable"):  # transformers >= 5.23
            self.encoder.activation_checkpointing_enable(activation_checkpointing_kwargs=activation_checkpointing_kwargs)
        else:
            self.encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=activation_checkpointing_kwargs)

    @property
    def config(self) -> Any:
        """The encoder's config: ``id2label``, ``problem_type`` and the rest live there, as on a transformers model."""
        return self.encoder.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **inputs: torch.Tensor) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **inputs).last_hidden_state
        pooled = pool(hidden, attention_mask, self.pooling)
        if self.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)))


def is_pooled(directory: Path) -> bool:
    """Whether ``directory`` holds a model :func:`save_pooled` wrote (this layout or the earlier one)."""
    return (directory / DENSE_DIR / "config.json").is_file() or (directory / HEAD_FILE).is_file()


def save_pooled(model: PooledClassifier, directory: Path, max_length: int) -> None:
    """Write ``model`` as a sentence-transformers model: encoder, pooling, and the head as an Identity ``Dense``."""
    model.encoder.save_pretrained(str(directory), safe_serialization=True)
    flags = {"word_embedding_dimension": model.config.hidden_size}
    flags.update({flag: mode == model.pooling for flag, mode in _ST_FLAGS.items()
                  if flag != "pooling_mode_mean_sqrt_len_tokens"})
    _write_json(directory / POOLING_FILE, flags)
    steps = [_ENCODER, _POOLING, *([_NORMALIZE] if model.normalize else []), _DENSE]
    _write_json(directory / "modules.json", [{"idx": i, "name": str(i), **step} for i, step in enumerate(steps)])
    _write_json(directory / "sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": False})
    head = model.classifier
    _write_json(directory / DENSE_DIR / "config.json",
                {"in_features": head.in_features, "out_features": head.out_features, "bias": True,
                 "activation_function": "torch.nn.modules.linear.Identity"})
    save_file({f"linear.{k}": v.detach().contiguous().cpu() for k, v in head.state_dict().items()},
              str(directory / DENSE_DIR / "model.safetensors"))


def load_pooled(directory: Path, trust_remote_code: bool = False) -> PooledClassifier:
    """Load what :func:`save_pooled` wrote (or a run saved before, with ``classifier.safetensors``)."""
    from transformers import AutoModel

    pooling = pooling_from_st_config(json.loads((directory / POOLING_FILE).read_text())) or "mean"
    encoder = AutoModel.from_pretrained(str(directory), trust_remote_code=trust_remote_code)
    if (directory / DENSE_DIR / "config.json").is_file():
        head = {k.removeprefix("linear."): v for k, v in load_file(str(directory / DENSE_DIR / "model.safetensors"))
                .items()}
    else:
        head = load_file(str(directory / HEAD_FILE))
    model = PooledClassifier(encoder, pooling, head["weight"].shape[0], normalize=normalizes(directory))
    model.classifier.load_state_dict(head)
    return model


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")
