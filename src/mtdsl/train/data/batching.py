"""Endless, reproducible batches of ``(example index, augmentation seed)`` for one stream.

A stream's batches are a pure function of ``(seed, position)``: the k-th batch
is the same whether it is drawn in one run, after a resume, or with any number
of loader workers. That is what makes resume exact: a checkpoint stores how
many batches each stream has consumed, and the sampler skips that many index
lists (cheap: no image is opened) before yielding again.

Each example comes with its own augmentation seed, so random crops and flips
do not depend on which worker process loads the image.

>>> batches = iter(ShuffledBatches(5, batch_size=2, seed=0))
>>> [[index for index, _ in next(batches)] for _ in range(3)]
[[1, 3], [0, 4], [2, 3]]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

_SEED_SPACE = 2**31 - 1


def seeded_generator(*parts: int) -> torch.Generator:
    """A generator seeded from several integers, well mixed (nearby parts give unrelated streams)."""
    seed = int(np.random.SeedSequence([int(part) for part in parts]).generate_state(1, np.uint32)[0])
    return torch.Generator().manual_seed(seed)


def endless_permutation(indices: Sequence[int], seed: int, salt: int) -> Iterator[int]:
    """Every index once per pass, each pass in a fresh order drawn from ``(seed, salt, pass)``."""
    if not indices:
        raise ValueError("cannot draw batches from an empty set of examples")
    pool = torch.as_tensor(list(indices))
    epoch = 0
    while True:
        order = torch.randperm(len(pool), generator=seeded_generator(seed, salt, epoch))
        yield from pool[order].tolist()
        epoch += 1


class ShuffledBatches(Sampler[list[tuple[int, int]]]):
    """Batches of ``batch_size`` examples, shuffled anew on every pass over the data.

    Args:
        size: number of examples.
        batch_size: examples per batch.
        seed: the stream's seed.
        start: batches to skip (already consumed before a resume).
    """

    def __init__(self, size: int, batch_size: int, seed: int, start: int = 0) -> None:
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.start = start

    def _indices(self) -> Iterator[int]:
        return endless_permutation(range(self.size), self.seed, salt=0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        indices = self._indices()
        position = 0
        while True:
            batch = [next(indices) for _ in range(self.batch_size)]
            if position >= self.start:
                yield [(index, _augmentation_seed(self.seed, position, slot)) for slot, index in enumerate(batch)]
            position += 1

    def __len__(self) -> int:  # endless; DataLoader only needs this for its own bookkeeping
        return 2**62


class BalancedBatches(ShuffledBatches):
    """Batches that are half positive, half negative for one binary task (thesis §6.4).

    The smaller side is oversampled: each side cycles through its own shuffled passes.

    Args:
        targets: the task's 0/1 target for every example; an unknown (nan) one is never drawn.
    """

    def __init__(self, targets: torch.Tensor, batch_size: int, seed: int, start: int = 0) -> None:
        super().__init__(len(targets), batch_size, seed, start)
        self.positives = torch.nonzero(targets > 0.5).flatten().tolist()
        self.negatives = torch.nonzero(targets <= 0.5).flatten().tolist()

    def _indices(self) -> Iterator[int]:
        sides = [
            endless_permutation(self.positives, self.seed, salt=1) if self.positives else None,
            endless_permutation(self.negatives, self.seed, salt=2) if self.negatives else None,
        ]
        available = [side for side in sides if side is not None]
        turn = 0
        while True:
            yield next(available[turn % len(available)])
            turn += 1


def _augmentation_seed(seed: int, position: int, slot: int) -> int:
    return (seed * 1_000_003 + position * 4099 + slot) % _SEED_SPACE


class RankShare(Sampler[list[tuple[int, int]]]):
    """One rank's share of every batch of ``batches``: its ``1/ranks`` of the batch, in order (rank 0 the first part).

    Every rank reads the same global batches, so the ``k``-th global batch of a stream is the same
    at any number of ranks, and together the ranks train on exactly what one process would. The
    parts are contiguous, not strided: a balanced batch alternates positives and negatives, so every
    rank's part stays balanced (a stride of 2 would give one rank only positives).
    """

    def __init__(self, batches: Sampler[list[tuple[int, int]]], rank: int, ranks: int) -> None:
        self.batches = batches
        self.rank = rank
        self.ranks = ranks

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in self.batches:
            share = len(batch) // self.ranks
            yield batch[self.rank * share : (self.rank + 1) * share]

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]
