"""The ``bert`` backbone's usage snippet: how plain libraries load a saved run (see :class:`tl_toolkit.Usage`).

A model with a pooling of its own (mean, max or cls, ``bert_pooling.py``) is a
sentence-transformers model whose last module is the head, so ``encode``
returns the logits; any other is a transformers sequence classifier. Both
truncate at the run's ``data.max_length``, as ``tl predict`` does. A run on
sentence pairs (``data.text_pair_column``) shows ``(first, second)`` tuples in
its example: the tokenizer reads each tuple as one pair, as the run trained.
"""

from __future__ import annotations

from tl_toolkit import Usage

__all__ = ["bert_usage"]

_EXAMPLE = '["a gripping, funny and moving film", "a dull, lifeless mess"]'
_PAIR_EXAMPLE = ('[("A man is playing a guitar.", "Someone is making music."), '
                 '("A cat sleeps on the sofa.", "A dog runs in the park.")]')


def bert_usage(pooled: bool, max_length: int, pairs: bool = False) -> Usage:
    """The snippet for a directory ``BertBackbone.save`` wrote.

    ``pooled``: the sentence-transformers layout; ``pairs``: the run read sentence pairs.
    """
    # A list of (first, second) tuples: the tokenizer and sentence-transformers' encode read each as one pair.
    example = _PAIR_EXAMPLE if pairs else _EXAMPLE
    if pooled:
        return Usage(
            library="sentence-transformers",
            imports=("from sentence_transformers import SentenceTransformer",),
            load=('model = SentenceTransformer(model_dir, device="cpu")',),
            labels="model[0].auto_model.config.id2label",
            logits=("logits = model.encode(inputs, convert_to_tensor=True)",),
            example=example,
        )
    return Usage(
        library="transformers",
        imports=("from transformers import AutoModelForSequenceClassification, AutoTokenizer",),
        load=("model = AutoModelForSequenceClassification.from_pretrained(model_dir)",
              "tokenizer = AutoTokenizer.from_pretrained(model_dir)"),
        labels="model.config.id2label",
        logits=(f'batch = tokenizer(inputs, padding=True, truncation=True, max_length={max_length}, '
                f'return_tensors="pt")',
                "logits = model(**batch).logits"),
        example=example,
    )
