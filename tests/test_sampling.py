"""Task sampling: each strategy yields the stream distribution it promises."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtdsl.spec.training import (
    SAMPLERS,
    DynamicSampling,
    EqualSampling,
    FixedSampling,
    ProportionalSampling,
    Ramp,
    RoundRobinSampling,
    SequentialSampling,
)
from mtdsl.train.loop.sampling import PLANNERS, TaskSampler

SIZES = [1200, 400, 200]
BATCHES = [10, 20, 10]


def sampler(config, ratios=None, **kwargs):
    return TaskSampler.create(config, sizes=SIZES, batch_sizes=BATCHES, ratios_by_stream=ratios, seed=3, **kwargs)


def frequencies(draws, streams=3):
    return [draws.count(i) / len(draws) for i in range(streams)]


def test_every_registered_sampling_kind_has_a_strategy():
    assert set(SAMPLERS.kinds()) == set(PLANNERS)


@pytest.mark.parametrize("config, ratios", [
    (FixedSampling(ratios={"a": 1}), [0.5, 0.3, 0.2]),
    (FixedSampling(ratios={"a": 1}), [0.1, 0.1, 0.8]),
    (ProportionalSampling(), None),
    (EqualSampling(), None),
])
def test_an_epoch_is_one_pass_over_every_stream_by_default_and_the_thesis_formula_by_name(config, ratios):
    passes = sampler(config, ratios).draws(0, 0.0)
    assert len(passes) == round(sum(n / b for n, b in zip(SIZES, BATCHES)))
    weighted = sampler(config, ratios, epoch="weighted")
    alphas = weighted.ratios(0.0)
    assert len(weighted.draws(0, 0.0)) == round(sum(n * a / b for n, a, b in zip(SIZES, alphas, BATCHES)))


def test_under_proportional_sampling_an_epoch_sees_every_dataset_once():
    draws = sampler(ProportionalSampling()).draws(0, 0.0)
    assert [draws.count(i) * b for i, b in enumerate(BATCHES)] == pytest.approx(SIZES, abs=max(BATCHES))


def test_an_unknown_epoch_length_is_refused():
    with pytest.raises(ValueError, match="passes"):
        sampler(ProportionalSampling(), epoch="steps")


def draws_over(s, epochs=200):
    draws = []
    for epoch in range(epochs):
        draws += s.draws(epoch, 0.0)
    return draws


def test_proportional_follows_dataset_sizes_in_batches():
    observed = frequencies(draws_over(sampler(ProportionalSampling())))
    batches = [n / b for n, b in zip(SIZES, BATCHES)]
    assert observed == pytest.approx([count / sum(batches) for count in batches], abs=0.02)


def test_proportional_with_equal_batch_sizes_follows_dataset_sizes():
    draws = TaskSampler.create(ProportionalSampling(), sizes=SIZES, batch_sizes=[10, 10, 10], ratios_by_stream=None,
                               seed=3).draws(0, 0.0)
    assert frequencies(draws) == pytest.approx([n / sum(SIZES) for n in SIZES], abs=0.01)


def test_fixed_follows_given_ratios_without_needing_them_to_sum_to_one():
    observed = frequencies(draws_over(sampler(FixedSampling(ratios={"a": 1}), [2.0, 1.0, 1.0])))
    assert observed == pytest.approx([0.5, 0.25, 0.25], abs=0.02)


def test_zero_ratio_is_never_sampled():
    draws = draws_over(sampler(FixedSampling(ratios={"a": 1}), [1.0, 0.0, 1.0]), epochs=5)
    assert 1 not in draws


def test_equal_samples_streams_equally():
    assert frequencies(draws_over(sampler(EqualSampling()))) == pytest.approx([1 / 3] * 3, abs=0.02)


def test_ramp_moves_ratio_over_training():
    s = sampler(FixedSampling(ratios={"a": 1}), [0.7, 0.2, Ramp(start=0.1, end=0.5)])
    start = s.ratios(0.0)
    end = s.ratios(1.0)
    assert start[2] == pytest.approx(0.1)
    assert end[2] == pytest.approx(0.5 / 1.4)
    late = frequencies([task for e in range(200) for task in s.draws(e, 1.0)])
    assert late[2] == pytest.approx(0.5 / 1.4, abs=0.02)


def test_round_robin_alternates_and_covers_each_dataset_once():
    draws = sampler(RoundRobinSampling()).draws(0, 0.0)
    assert draws[:6] == [0, 1, 2, 0, 1, 2]
    assert len(draws) == sum(math.ceil(n / b) for n, b in zip(SIZES, BATCHES))


def test_sequential_runs_whole_datasets_one_after_another():
    draws = sampler(SequentialSampling()).draws(0, 0.0)
    assert draws == [0] * 120 + [1] * 20 + [2] * 20


def test_short_epochs_realise_their_ratios_to_the_step():
    s = TaskSampler.create(ProportionalSampling(), sizes=[717, 717], batch_sizes=[64, 64], ratios_by_stream=None,
                           seed=0)
    for epoch in range(5):
        draws = s.draws(epoch, 0.0)
        assert abs(draws.count(0) - draws.count(1)) <= 1


def test_plans_are_reproducible_per_epoch_and_differ_between_epochs():
    a, b = sampler(ProportionalSampling()), sampler(ProportionalSampling())
    assert a.draws(4, 0.0) == b.draws(4, 0.0)
    assert a.draws(4, 0.0) != a.draws(5, 0.0)


def test_dynamic_samples_the_task_furthest_below_target_more():
    s = sampler(DynamicSampling(temperature=0.1, floor=0.05), targets=[0.9, 0.9, 0.9])
    assert s.ratios(0.0) == pytest.approx([n / sum(SIZES) for n in SIZES])
    s.observe({0: 0.9, 1: 0.5, 2: 0.85})
    ratios = s.ratios(0.5)
    assert ratios[1] > ratios[2] > ratios[0]
    assert min(ratios) >= 0.05 / 3
    draws = s.draws(0, 0.5)
    assert frequencies(draws) == pytest.approx(ratios, abs=1 / len(draws))  # whole steps per epoch


def test_dynamic_state_round_trips():
    s = sampler(DynamicSampling(), targets=[0.9, 0.9, 0.9])
    s.observe({0: 0.1, 1: 0.9, 2: 0.9})
    restored = sampler(DynamicSampling(), targets=[0.9, 0.9, 0.9])
    restored.load_state_dict(s.state_dict())
    assert restored.draws(2, 0.1) == s.draws(2, 0.1)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["proportional", "equal", "fixed", "round_robin", "sequential"]),
       batches=st.lists(st.integers(1, 64), min_size=1, max_size=4), images=st.integers(1, 50_000),
       data=st.data())
def test_an_images_budget_draws_that_many_images_within_a_batch_per_stream(kind, batches, images, data):
    sizes = data.draw(st.lists(st.integers(1, 5_000), min_size=len(batches), max_size=len(batches)))
    ratios = data.draw(st.lists(st.floats(0.05, 1.0), min_size=len(batches), max_size=len(batches)))
    config = {"proportional": ProportionalSampling(), "equal": EqualSampling(),
              "fixed": FixedSampling(ratios={"a": 1}), "round_robin": RoundRobinSampling(),
              "sequential": SequentialSampling()}[kind]
    task_sampler = TaskSampler.create(config, sizes=sizes, batch_sizes=batches,
                                      ratios_by_stream=ratios if kind == "fixed" else None, seed=1)
    draws = task_sampler.draws(epoch=2, progress=0.5, images=images)
    drawn = sum(batches[stream] for stream in draws)
    allowed = max(batches) / 2 if len(batches) == 1 else len(batches) * max(batches)
    assert abs(drawn - images) <= allowed or len(draws) == 1  # an epoch has one step at least
    if kind in ("proportional", "equal", "fixed"):  # the budget is shared out by the same ratios
        counts = [draws.count(i) for i in range(len(batches))]
        expected = [a * len(draws) for a in task_sampler.ratios(0.5)]
        assert all(abs(c - e) < 1 for c, e in zip(counts, expected))
