"""Class-balanced batches and the in-batch cosine pair loss of the ``contrastive`` strategy.

SetFit draws explicit sentence pairs and encodes both sentences of every pair;
its default oversampling makes pairs quadratic in the number of examples
(about 120k for 6 classes of 64). Here a batch holds the same number of
examples of each class, and *every* pair inside the batch is a training pair:
``B`` encodings give ``B (B - 1) / 2`` pairs, positives (same label) and
negatives in about equal numbers, and the stage's cost is linear in the number
of examples (``passes`` times each example).

The batches depend on the seed alone, so a resumed stage, and every process of
a multi-process run, draws the same ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["balanced_batches", "cosine_pair_loss", "stage_steps"]


def stage_steps(num_examples: int, batch_size: int, passes: int) -> int:
    """Batches of the stage: each example is encoded about ``passes`` times."""
    return max(1, passes * math.ceil(num_examples / batch_size))


def balanced_batches(labels: list[int], batch_size: int, count: int, seed: int) -> list[list[int]]:
    """``count`` batches of example indices, each with ``batch_size // classes`` examples of every class (at least 2).

    Each class's examples are dealt from a fresh shuffle whenever its previous
    shuffle runs out, so within a class every example is used equally often.
    """
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    classes = sorted(by_class)
    per_class = max(2, batch_size // max(len(classes), 1))
    generator = torch.Generator().manual_seed(seed)
    queues: dict[int, list[int]] = {c: [] for c in classes}

    def deal(c: int, n: int) -> list[int]:
        n = min(n, len(by_class[c]))  # a class smaller than its share: each of its examples once a batch
        taken: list[int] = []
        while len(taken) < n:
            if not queues[c]:  # a fresh shuffle; examples already in this batch wait at its end
                order = [by_class[c][i] for i in torch.randperm(len(by_class[c]), generator=generator).tolist()]
                queues[c] = [i for i in order if i not in taken] + [i for i in order if i in taken]
            want = n - len(taken)
            taken += queues[c][:want]
            queues[c] = queues[c][want:]
        return taken

    return [[i for c in classes for i in deal(c, per_class)] for _ in range(count)]


def cosine_pair_loss(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of each pair's cosine similarity from its target: 1 same label, 0 different.

    Positive and negative pairs weigh half each, whatever their numbers (SetFit's
    ``CosineSimilarityLoss`` on the pairs of the batch).
    """
    unit = F.normalize(embeddings.float(), dim=-1)
    similarity = unit @ unit.T
    upper = torch.ones_like(similarity, dtype=torch.bool).triu(diagonal=1)
    same = labels[:, None] == labels[None, :]
    terms = [(similarity[same & upper] - 1).pow(2).mean()] if (same & upper).any() else []
    if (~same & upper).any():
        terms.append(similarity[~same & upper].pow(2).mean())
    if not terms:  # a batch of one example has no pair
        return (similarity * 0).sum()
    return torch.stack(terms).mean()
