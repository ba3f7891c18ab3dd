"""``token_classification``: one tag per word (named-entity recognition, tagging).

An example is a list of words (``data.text_column``) and a list of tags of the
same length (``data.label_column``: strings, or integer ids of a
``datasets.ClassLabel`` feature). Tag schemes (``data.task_options.scheme``):
IOB2/BIO, IOB1 (converted to IOB2 on reading) and plain tags. The backbone
tokenises the words; the first sub-token of each word carries its tag and the
other pieces are ignored by the loss (``label_all_tokens: true`` tags every
piece, the later pieces of a ``B-`` word as ``I-``). Sentences longer than
``data.max_length`` tokens are truncated, with one warning counting the words
lost, or cut into windows (``long_sentences: window``).

Metrics: entity-level micro precision, recall and F1 (seqeval; ``mode:
strict`` matches entities by IOB2 rules exactly), token accuracy, and
per-entity-type scores in ``summary.json`` (``per_type``) and the report.
``tl predict`` on a text file answers ``entities`` (``text``, ``type``,
``start``, ``end`` character offsets into the line, ``score``: the mean of
its words' tag probabilities), words grouped as the Hugging Face pipeline's
``aggregation_strategy="first"`` groups them; on a JSON Lines file with a
words column it answers per-word ``tags``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tl_toolkit import Backbone, TaskPlugin, UserError

if TYPE_CHECKING:
    import datasets
    import torch

__all__ = ["TokenClassificationOptions", "TokenClassificationTask", "entities", "to_iob2"]

log = logging.getLogger(__name__)

IGNORE = -100  # the label of positions the loss and the metrics skip (as transformers' collators use it)


class TokenClassificationOptions(BaseModel):
    """Options of the ``token_classification`` task (``data.task_options``)."""

    model_config = ConfigDict(extra="forbid")

    scheme: Literal["IOB2", "IOB1", "plain"] = Field(
        "IOB2", description="tag scheme of the data: IOB2 (BIO), IOB1 (converted to IOB2), or plain tags")
    label_all_tokens: bool = Field(False, description="tag every sub-token of a word, not only the first")
    long_sentences: Literal["truncate", "window"] = Field(
        "truncate", description="sentences over data.max_length tokens: truncate (warns), or cut into windows")
    mode: Literal["default", "strict"] = Field("default", description="seqeval matching: default, or strict IOB2")


class TokenClassificationTask(TaskPlugin):
    """One tag per word: cross-entropy over first sub-tokens, entity-level F1 (seqeval)."""

    head = "token_classification"
    options_model = TokenClassificationOptions
    metric_goals = {"f1": "max", "precision": "max", "recall": "max", "accuracy": "max"}
    pipeline_tags = {"text": "token-classification"}
    options: TokenClassificationOptions
    #: Tagged sub-tokens per training sentence, on average (set by ``prepare`` of the training set).
    tags_per_example: float = 0.0
    #: NER corpora mix one-word lines (headlines, scores) with long sentences, so 50-batch length groups
    #: make batches of one kind. Measured on CoNLL-2003 with all-MiniLM-L6-v2 (1 epoch, seed 0, test F1 /
    #: sentences a second on 2 CPU cores): 50 batches 0.7899 / 126, 16 batches 0.7950 / 112, 4 batches
    #: 0.7951 / 89, random batches 0.8036 / 52; the Trainer's random batches 0.7983 / 49.
    length_group_batches = 16
    #: So where the backbone can, training batches are random and padding-free instead (``bert``: one row a
    #: batch, attention within each sentence): the mix of random batches at about the speed of grouped ones
    #: (same setting, fp32: 0.8014 / 101; with the default bf16 steps 0.8011 / 170, the Trainer 0.8003 / 43).
    padding_free = True

    # -- labels --

    def encode(self, train: datasets.Dataset, evals: datasets.Dataset | None) -> tuple[
        datasets.Dataset, datasets.Dataset | None, list[str]
    ]:
        train_tags = self._tags(train, "train")
        eval_tags = None if evals is None else self._tags(evals, "eval")
        names = self._names(train, train_tags)
        if eval_tags is not None:
            unseen = sorted({t for row in eval_tags for t in row} - set(names))
            if unseen:
                raise UserError(f"data.eval: tags {unseen[:10]} in {self.data.eval!r} never occur in training data "
                                f"(training tags: {names[:20]}); fix the eval tags")
        index = {n: i for i, n in enumerate(names)}
        train = train.add_column("labels", [[index[t] for t in row] for row in train_tags])
        if evals is not None and eval_tags is not None:
            evals = evals.add_column("labels", [[index[t] for t in row] for row in eval_tags])
        return train, evals, names

    def _tags(self, ds: datasets.Dataset, split: str) -> list[list[str]]:
        """The string tags of each row, in IOB2 (or plain), checked against the words."""
        import datasets as hf

        words_col, tags_col, where = self.data.text_column, self.data.label_column, getattr(self.data, split)
        feature = ds.features[tags_col]
        inner = getattr(feature, "feature", None)
        if inner is None:
            raise UserError(f"data.label_column: column {tags_col!r} of {where!r} holds {feature}, not a list of "
                            f"tags per example; token_classification needs one tag per word")
        names = inner.names if isinstance(inner, hf.ClassLabel) else None
        out = []
        for row, (words, tags) in enumerate(zip(ds[words_col], ds[tags_col], strict=True)):
            if not isinstance(words, list):
                raise UserError(f"data.text_column: row {row} of {where!r} holds {type(words).__name__} in column "
                                f"{words_col!r}, not a list of words; token_classification reads words")
            tags = tags or []
            if len(words) != len(tags):
                raise UserError(f"data.{split}: row {row} of {where!r} has {len(words)} words and {len(tags)} tags; "
                                f"give one tag per word")
            tags = [names[t] for t in tags] if names else [str(t) for t in tags]
            out.append(to_iob2(tags) if self.options.scheme == "IOB1" else tags)
        return out

    def _names(self, train: datasets.Dataset, tags: list[list[str]]) -> list[str]:
        """The tag names: a ClassLabel's order, else O first and each type's B- before its I-."""
        import datasets as hf

        inner = getattr(train.features[self.data.label_column], "feature", None)
        if isinstance(inner, hf.ClassLabel):
            return [*inner.names] if self.options.scheme != "IOB1" else _sorted_tags({t for r in tags for t in r})
        return _sorted_tags({t for row in tags for t in row})

    def setup(self, label_names: list[str], train_labels: list[Any] | None = None) -> None:
        super().setup(label_names, train_labels)
        weights = None if self.train is None else self.train.class_weights
        if weights == "auto":
            raise UserError("train.class_weights: 'auto' is not available for token_classification; give one "
                            "weight per tag, in label order, or remove the key")
        if weights is not None and len(weights) != len(label_names):
            raise UserError(f"train.class_weights: {len(weights)} weights for {len(label_names)} tags "
                            f"{label_names[:20]}; give one per tag, in that order")
        self.class_weights = weights
        b_to_i = {}
        for i, name in enumerate(label_names):
            inside = "I-" + name[2:] if name.startswith("B-") else name
            b_to_i[i] = label_names.index(inside) if inside in label_names else i
        self._b_to_i = b_to_i

    # -- preparation: tokens and aligned labels --

    def prepare(self, backbone: Backbone, dataset: datasets.Dataset, train: bool) -> datasets.Dataset:
        words_col = self.data.text_column
        counts = [len(w) for w in dataset[words_col]]
        done = backbone.preprocess(dataset, train=train)
        covered = [max(ids, default=-1) + 1 for ids in done["word_ids"]]
        lost = sum(n - c for n, c in zip(counts, covered, strict=True))
        if lost and self.options.long_sentences == "window":
            done = self._windows(backbone, dataset, done, covered, train)
        elif lost:
            cut = sum(n > c for n, c in zip(counts, covered, strict=True))
            log.warning("data.max_length=%d truncates %d of %d sentences, losing %d of %d words; raise it, or set "
                        "data.task_options.long_sentences: window", self.data.max_length, cut, len(counts), lost,
                        sum(counts))
        aligned = done.map(self._align, batched=True, remove_columns=["word_ids"], desc="Aligning tags")
        if train:
            tagged = sum(sum(label != IGNORE for label in row) for row in aligned["labels"])
            self.tags_per_example = tagged / max(len(aligned), 1)
        return aligned

    def _windows(self, backbone: Backbone, raw: datasets.Dataset, done: datasets.Dataset, covered: list[int],
                 train: bool) -> datasets.Dataset:
        """Cut each truncated sentence into consecutive windows that fit, each window one example."""
        import datasets as hf

        parts = [done]
        words_col = self.data.text_column
        rest = raw
        while True:
            rows = [i for i, c in enumerate(covered) if c < len(rest[i][words_col])]
            if not rows:
                break
            cut = rest.select(rows)
            starts = [max(covered[i], 1) for i in rows]  # at least one word a window: always progress
            rest = hf.Dataset.from_dict({
                words_col: [w[s:] for w, s in zip(cut[words_col], starts, strict=True)],
                "labels": [t[s:] for t, s in zip(cut["labels"], starts, strict=True)],
            })
            piece = backbone.preprocess(rest, train=train)
            covered = [max(ids, default=-1) + 1 for ids in piece["word_ids"]]
            parts.append(piece)
        return hf.concatenate_datasets(parts)

    def _align(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """Token labels: the word's tag on its first sub-token (every sub-token with label_all_tokens), else -100."""
        out = []
        for word_ids, tags in zip(batch["word_ids"], batch["labels"], strict=True):
            row, previous = [], -1
            for w in word_ids:
                if w < 0:
                    row.append(IGNORE)
                elif w != previous:
                    row.append(tags[w])
                else:
                    row.append(self._b_to_i[tags[w]] if self.options.label_all_tokens else IGNORE)
                previous = w
            out.append(row)
        return {"labels": out}

    # -- training and evaluation --

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy over the tagged sub-tokens; ``reduction="none"``: one mean per sentence.

        The training loss ("mean") divides the batch's summed token losses by the number of tagged
        tokens an average batch of that many training sentences holds, not by this batch's own count:
        with length-grouped batches, a batch of short sentences would otherwise weigh each of its
        tokens several times more than a batch of long ones. So every token counts the same, as in
        expectation with random batches. Padding-free batches (:attr:`packed`) are random batches:
        there it is the batch's own mean, as transformers' Trainer takes it.
        """
        import torch
        import torch.nn.functional as F

        logits = logits.float()
        weight = None if self.class_weights is None else torch.tensor(self.class_weights, device=logits.device)
        smoothing = 0.0 if self.train is None else self.train.label_smoothing
        # Class weights: the weighted mean. Padding-free batches are plainly shuffled: the batch's own mean.
        if reduction != "none" and (self.packed or not (self.tags_per_example and weight is None)):
            return F.cross_entropy(logits.transpose(1, 2), labels, weight=weight, ignore_index=IGNORE,
                                   label_smoothing=smoothing)
        per_token = F.cross_entropy(logits.transpose(1, 2), labels, weight=weight, ignore_index=IGNORE,
                                    label_smoothing=smoothing, reduction="none")  # 0 where ignored
        if reduction != "none":
            return per_token.sum() / (labels.shape[0] * self.tags_per_example)
        valid = (labels != IGNORE).sum(-1).clamp(min=1)
        return per_token.sum(-1) / valid  # one value per sentence: the mean over its tagged tokens

    def sequences(self, logits: list[torch.Tensor], labels: list[torch.Tensor]) -> tuple[
        list[list[str]], list[list[str]]
    ]:
        """The true and predicted tag sequences of every example, over the tagged positions."""
        truth, preds = [], []
        for batch_logits, batch_labels in zip(logits, labels, strict=True):
            ids = batch_logits.argmax(-1)
            for row_ids, row_labels in zip(ids.tolist(), batch_labels.tolist(), strict=True):
                kept = [(p, t) for p, t in zip(row_ids, row_labels, strict=False) if t != IGNORE]
                truth.append([self.label_names[t] for _, t in kept])
                preds.append([self.label_names[p] for p, _ in kept])
        return truth, preds

    def _seqeval(self) -> dict[str, Any]:
        if self.options.mode == "strict":
            from seqeval.scheme import IOB2

            return {"mode": "strict", "scheme": IOB2}
        return {}

    def metrics(self, logits: list[torch.Tensor], labels: list[torch.Tensor]) -> dict[str, float]:
        from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

        truth, preds = self.sequences(logits, labels)
        if not any(truth):
            return {"f1": 0.0, "precision": 0.0, "recall": 0.0, "accuracy": 0.0}
        kw = self._seqeval()
        return {"f1": float(f1_score(truth, preds, zero_division=0, **kw)),
                "precision": float(precision_score(truth, preds, zero_division=0, **kw)),
                "recall": float(recall_score(truth, preds, zero_division=0, **kw)),
                "accuracy": float(accuracy_score(truth, preds))}

    def details(self, logits: list[torch.Tensor], labels: list[torch.Tensor]) -> dict[str, Any]:
        from seqeval.metrics import classification_report

        truth, preds = self.sequences(logits, labels)
        if not any(truth):
            return {"per_type": {}}
        report = classification_report(truth, preds, output_dict=True, zero_division=0, **self._seqeval())
        per_type = {name: {"precision": round(float(m["precision"]), 6), "recall": round(float(m["recall"]), 6),
                           "f1": round(float(m["f1-score"]), 6), "support": int(m["support"])}
                    for name, m in report.items() if not name.endswith(" avg")}
        return {"per_type": per_type}

    def summary(self, details: dict[str, Any]) -> dict[str, Any]:
        return {"per_type": details.get("per_type", {})}

    def report_lines(self, details: dict[str, Any], out_dir: Path, title: str) -> list[str]:
        per_type = details.get("per_type") or {}
        if not per_type:
            return []
        lines = ["## Per-entity-type metrics", "", "Entity-level scores (seqeval, "
                 f"{self.options.mode} mode): an entity counts when its type and its span match exactly.", "",
                 "| entity type | precision | recall | F1 | support |", "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |"
                  for name, m in per_type.items()]
        return [*lines, ""]

    # -- prediction --

    def prediction_inputs(self, dataset: datasets.Dataset, backbone: Backbone) -> datasets.Dataset:
        """Text lines are split into words the way the backbone's tokenizer splits them, offsets kept; a column of
        word lists is read as it is."""
        import datasets as hf

        col = self.data.text_column
        values = dataset[col]
        if values and isinstance(values[0], list):
            return dataset.add_column("labels", [[0] * len(w) for w in values])
        split = [backbone.split_words(text) for text in values]
        return hf.Dataset.from_dict({
            col: [[w for w, _ in words] for words in split],
            "_text": list(values),
            "_offsets": [[list(span) for _, span in words] for words in split],
            "labels": [[0] * len(words) for words in split],
        })

    def answer(self, logits: torch.Tensor, labels: torch.Tensor, example: dict[str, Any], top_k: int = 1) -> dict[
        str, Any
    ]:
        first = labels != IGNORE  # the placeholder tags mark each kept word's first sub-token
        probs = logits[: len(first)][first].float().softmax(-1)
        scores, ids = probs.max(-1)
        tags = [self.label_names[i] for i in ids.tolist()]
        if "_offsets" not in example:
            return {"tags": tags + ["O"] * (len(example[self.data.text_column]) - len(tags))}
        return {"entities": entities(tags, scores.tolist(), example["_offsets"], example["_text"])}


def entities(tags: list[str], scores: list[float], offsets: list[list[int]], text: str) -> list[dict[str, Any]]:
    """Entities from per-word tags: a ``B-`` tag, or a change of type, starts one; ``O`` words end it.

    Words are grouped as the Hugging Face token-classification pipeline groups them with
    ``aggregation_strategy="first"``; the score is the mean of the entity's word scores.
    """
    groups: list[tuple[str, list[int]]] = []
    for i, tag in enumerate(tags):
        bi, kind = (tag[0], tag[2:]) if tag[:2] in ("B-", "I-") else ("I", tag)
        if groups and groups[-1][0] == kind and bi != "B":
            groups[-1][1].append(i)
        else:
            groups.append((kind, [i]))
    out = []
    for kind, words in groups:
        if kind == "O":
            continue
        start, end = offsets[words[0]][0], offsets[words[-1]][1]
        out.append({"text": text[start:end], "type": kind, "start": start, "end": end,
                    "score": round(sum(scores[i] for i in words) / len(words), 6)})
    return out


def to_iob2(tags: list[str]) -> list[str]:
    """IOB1 -> IOB2: an ``I-`` tag that does not continue an entity of its type starts one (``B-``)."""
    out = []
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and (i == 0 or out[i - 1][2:] != tag[2:] or out[i - 1] == "O"):
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


def _sorted_tags(tags: set[str]) -> list[str]:
    """``O`` first, then by entity type with ``B-`` before ``I-``; plain tags alphabetically."""
    def key(tag: str) -> tuple[int, str, str]:
        if tag == "O":
            return (0, "", "")
        return (1, tag[2:], tag[:2]) if tag[:2] in ("B-", "I-") else (1, tag, "")

    return sorted(tags, key=key)
