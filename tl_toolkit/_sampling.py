"""Length-grouped batches: less padding for text, still a random order.

Padding every batch to its longest example wastes the compute spent on pad
tokens; with random batches of short sentences most of a batch is padding.
:class:`LengthGroupedSampler` draws transformers' length-grouped order
(shuffle, cut into mega-batches of ``group_batches`` batches, sort each by
length), then shuffles the batches themselves so a long batch is as likely
early as late. Larger groups pad less; smaller ones mix more lengths, and so
more kinds of sentence, into each batch (the task's
``TaskPlugin.length_group_batches``, or ``train.length_group_batches``).

The order depends on (seed, epoch) only: the engine's ``set_epoch`` (through
accelerate's ``DataLoaderShard``) moves it on, a resumed run sees the same
batches, and every process of a multi-process run computes the same order
before accelerate hands each its share of whole batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

__all__ = ["LengthGroupedSampler"]


class LengthGroupedSampler(Sampler[int]):
    """Indices such that each run of ``batch_size`` consecutive ones has similar lengths.

    The first batch holds the longest example (out-of-memory shows at once);
    the last, possibly partial, batch stays last so batch boundaries do not
    move when a ``BatchSampler`` cuts the stream.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, group_batches: int = 50) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        # transformers' own cap for small data sets: at most a quarter of the batches in one group
        self.group_batches = max(1, min(group_batches, len(self.lengths) // (batch_size * 4)))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        from transformers.trainer_pt_utils import get_length_grouped_indices

        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = get_length_grouped_indices(self.lengths, self.batch_size, mega_batch_mult=self.group_batches,
                                           generator=generator)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        tail = [batches.pop()] if batches and len(batches[-1]) < self.batch_size else []
        first, rest = batches[:1], batches[1:]
        shuffled = [rest[i] for i in torch.randperm(len(rest), generator=generator).tolist()]
        for batch in first + shuffled + tail:
            yield from batch
