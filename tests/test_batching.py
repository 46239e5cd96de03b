"""Endless batches: reproducible from the seed alone, and balanced where asked."""

from __future__ import annotations

from itertools import islice

import torch

from mtdsl.train.data.batching import BalancedBatches, ShuffledBatches


def take(sampler, count):
    return list(islice(iter(sampler), count))


def test_each_pass_visits_every_example_once():
    batches = take(ShuffledBatches(12, batch_size=4, seed=1), 3)
    assert sorted(i for batch in batches for i, _ in batch) == list(range(12))


def test_starting_later_skips_exactly_the_consumed_batches():
    whole = take(ShuffledBatches(10, batch_size=3, seed=5), 7)
    resumed = take(ShuffledBatches(10, batch_size=3, seed=5, start=4), 3)
    assert resumed == whole[4:]


def test_augmentation_seeds_differ_per_example_and_position():
    batches = take(ShuffledBatches(10, batch_size=5, seed=0), 4)
    seeds = [seed for batch in batches for _, seed in batch]
    assert len(set(seeds)) == len(seeds)


def test_balanced_batches_are_half_positive_even_when_positives_are_rare():
    targets = torch.tensor([1.0] * 3 + [0.0] * 97)
    batches = take(BalancedBatches(targets, batch_size=8, seed=0), 20)
    for batch in batches:
        positives = sum(int(targets[i] > 0.5) for i, _ in batch)
        assert positives == 4
    negatives_seen = {i for batch in batches for i, _ in batch if targets[i] < 0.5}
    assert len(negatives_seen) == 80
