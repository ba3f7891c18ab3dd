"""A classification head on pooled token states, for checkpoints trained with mean or max pooling.

A sentence-transformers checkpoint (all-MiniLM-L6-v2 and its kin) was trained
to make the *mean* of its token states meaningful; its [CLS] pooler, which
``AutoModelForSequenceClassification`` puts the head on, never was. On such a
checkpoint a head on the [CLS] pooler learns little while the encoder stays
frozen (head-only, LoRA). :class:`PooledClassifier` is the bare encoder
(``AutoModel``), the checkpoint's own pooling over the attention mask, and a
linear head; it imports torch, so ``bert.py`` imports it only when it builds
or loads such a model.

On disk (``save_pooled`` / ``load_pooled``): the encoder's ``save_pretrained``
files (its ``config.json`` carries ``id2label``), the pooling as a
sentence-transformers ``1_Pooling/config.json``, and the head as
``classifier.safetensors`` (``weight``, ``bias``) - plain transformers and
safetensors read all of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

__all__ = ["HEAD_FILE", "POOLING_FILE", "PooledClassifier", "load_pooled", "pool", "save_pooled"]

HEAD_FILE = "classifier.safetensors"
POOLING_FILE = "1_Pooling/config.json"
# sentence-transformers' pooling flags, in the order they are read: the first one set wins.
_ST_FLAGS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean",
             "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}


def pooling_from_st_config(config: dict[str, Any]) -> str | None:
    """``mean``, ``cls`` or ``max`` from a sentence-transformers ``1_Pooling/config.json``."""
    return next((mode for flag, mode in _ST_FLAGS.items() if config.get(flag)), None)


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

    The forward pass takes the tokenizer's output and returns a
    ``SequenceClassifierOutput`` like the transformers classification classes,
    so the rest of the ``bert`` plugin treats both alike.
    """

    base_model_prefix = "encoder"  # where the transformer sits, as on a transformers model (block_names reads it)

    def __init__(self, encoder: nn.Module, pooling: str, num_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
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
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(pool(hidden, attention_mask,
                                                                                 self.pooling))))


def save_pooled(model: PooledClassifier, directory: Path) -> None:
    """Write the encoder (``save_pretrained``), the pooling, and the head (safetensors)."""
    model.encoder.save_pretrained(str(directory), safe_serialization=True)
    flags = {"word_embedding_dimension": model.config.hidden_size}
    flags.update({flag: mode == model.pooling for flag, mode in _ST_FLAGS.items()
                  if flag != "pooling_mode_mean_sqrt_len_tokens"})
    (directory / POOLING_FILE).parent.mkdir(exist_ok=True)
    (directory / POOLING_FILE).write_text(json.dumps(flags, indent=2) + "\n")
    head = {k: v.detach().contiguous().cpu() for k, v in model.classifier.state_dict().items()}
    save_file(head, str(directory / HEAD_FILE))


def load_pooled(directory: Path, trust_remote_code: bool = False) -> PooledClassifier:
    """Load what :func:`save_pooled` wrote."""
    from transformers import AutoModel

    pooling = pooling_from_st_config(json.loads((directory / POOLING_FILE).read_text())) or "mean"
    encoder = AutoModel.from_pretrained(str(directory), trust_remote_code=trust_remote_code)
    head = load_file(str(directory / HEAD_FILE))
    model = PooledClassifier(encoder, pooling, head["weight"].shape[0])
    model.classifier.load_state_dict(head)
    return model
