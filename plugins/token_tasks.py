"""The ``bert`` backbone's token-level half: one score vector per token (``token_classification`` heads).

The model is transformers' ``AutoModelForTokenClassification`` (saved with
``save_pretrained``, tag names in ``id2label``, so plain transformers and its
``token-classification`` pipeline load it). Words are tokenised with
``is_split_into_words``; each example keeps its per-word ``labels`` and gains
``word_ids`` (-1 for special tokens), from which the task aligns the tags.
Batches pad ``labels`` with -100 as ``DataCollatorForTokenClassification``
does; training batches may instead be padding-free rows (:func:`packed_rows`).
Nothing here imports torch at module level.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets
    import torch
    from torch import nn

__all__ = ["TOKEN_HEAD", "collate_tokens", "is_token_model_dir", "is_words_column", "load_token_model",
           "new_token_model", "packed_rows", "packs_rows", "split_words", "token_model_on", "tokenize_words"]

TOKEN_HEAD = "token_classification"


def is_words_column(dataset: datasets.Dataset, column: str) -> bool:
    """Whether ``column`` holds a list of words per example (rather than one text)."""
    feature = dataset.features.get(column)
    return feature is not None and getattr(feature, "feature", None) is not None


def tokenize_words(tokenizer: Any, dataset: datasets.Dataset, column: str, max_length: int) -> datasets.Dataset:
    """Token ids of each word list (truncated to ``max_length``), with the word index of every token."""

    def tokenize(batch: dict[str, list[Any]]) -> Any:
        encoded = tokenizer(batch[column], is_split_into_words=True, truncation=True, max_length=max_length)
        encoded["word_ids"] = [[-1 if w is None else w for w in encoded.word_ids(i)]
                               for i in range(len(batch[column]))]
        return encoded

    return dataset.map(tokenize, batched=True, remove_columns=[column], desc="Tokenizing words")


def collate_tokens(tokenizer: Any, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest example; ``labels`` padded with -100."""
    import torch

    labels = [e["labels"] for e in examples]
    batch = tokenizer.pad([{k: v for k, v in e.items() if k not in ("labels", "word_ids")} for e in examples],
                          return_tensors="pt")
    width = batch["input_ids"].shape[1]
    right = tokenizer.padding_side == "right"
    batch["labels"] = torch.tensor([(row + [-100] * (width - len(row))) if right else
                                    ([-100] * (width - len(row)) + row) for row in labels], dtype=torch.long)
    return batch


def packs_rows(model: nn.Module) -> bool:
    """Whether ``model`` trains on padding-free rows: a BERT encoder, whose positions count from 0.

    RoBERTa-like encoders count positions from the padding index plus one; they keep padded batches.
    """
    return getattr(getattr(model, "config", None), "model_type", None) == "bert"


def packed_rows() -> Any:
    """transformers' collator for padding-free batches: one row, positions restarting at every sentence,
    and the sentence boundaries (``cu_seq_lens_q``) that ``bert_attention`` attends within.
    Each sentence starts with [CLS], whose label is -100 anyway.
    """
    from transformers import DataCollatorWithFlattening

    return DataCollatorWithFlattening(return_position_ids=True, return_flash_attn_kwargs=True)


def split_words(tokenizer: Any, text: str) -> list[tuple[str, tuple[int, int]]]:
    """Words of ``text`` with their character offsets, as the fast tokenizer's pre-tokenizer splits them."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    if pre is None:
        return []
    return [(word, (start, end)) for word, (start, end) in pre.pre_tokenize_str(text)]


def new_token_model(path: str, config: Any, pretrained: bool, remote: bool) -> nn.Module:
    """The encoder at ``path`` under a fresh token-classification head."""
    from transformers import AutoModelForTokenClassification

    if pretrained:
        return AutoModelForTokenClassification.from_pretrained(path, config=config, trust_remote_code=remote)
    return AutoModelForTokenClassification.from_config(config, trust_remote_code=remote)


def token_model_on(encoder: nn.Module) -> nn.Module:
    """A fresh token-classification head on a trained encoder (``backbone.init_from``), its labels in its config.

    Raises:
        ValueError: the encoder's weights do not fit the token model's encoder.
    """
    from transformers import AutoModelForTokenClassification

    config: Any = encoder.config
    config.problem_type = None
    fresh = AutoModelForTokenClassification.from_config(config)
    # A sentence encoder may carry a [CLS] pooler the token model has no use for.
    result = fresh.base_model.load_state_dict(encoder.state_dict(), strict=False)
    if result.missing_keys:
        raise ValueError(f"the source encoder lacks {result.missing_keys[:5]}")
    return fresh


def is_token_model_dir(directory: Path) -> bool:
    """Whether ``directory`` holds a saved token-classification model (by its ``config.json``)."""
    config = directory / "config.json"
    if not config.is_file():
        return False
    architectures = json.loads(config.read_text()).get("architectures") or []
    return any(a.endswith("ForTokenClassification") for a in architectures)


def load_token_model(directory: Path, remote: bool) -> nn.Module:
    from transformers import AutoModelForTokenClassification

    return AutoModelForTokenClassification.from_pretrained(str(directory), trust_remote_code=remote)
