"""Learning-rate schedules as functions of fractional epochs."""

from __future__ import annotations

import pytest

from mtdsl.spec.training import (
    SCHEDULES,
    ConstantScheduleConfig,
    CosineScheduleConfig,
    CyclicScheduleConfig,
    PhaseSpec,
    PolyScheduleConfig,
    StepScheduleConfig,
)
from mtdsl.train.loop.schedule import LearningRate


@pytest.mark.parametrize("kind", SCHEDULES.kinds())
def test_every_registered_schedule_has_a_rule(kind):
    LearningRate(SCHEDULES.get(kind)(), base_lr=0.1, epochs=10).at(3.5)


def test_cyclic_is_triangular_between_base_and_max():
    schedule = LearningRate(CyclicScheduleConfig(base_lr=0.001, max_lr=0.01, cycle_epochs=4), base_lr=1.0, epochs=12)
    assert [schedule.at(e) for e in (0, 1, 2, 3, 4, 6)] == pytest.approx([0.001, 0.0055, 0.01, 0.0055, 0.001, 0.01])


@pytest.mark.parametrize("lr", [10.0, 0.01, 3e-4])
def test_cyclic_without_bounds_peaks_at_the_optimizers_rate(lr):
    # The default schedule: the optimizer's lr is the rate (it once ignored it and peaked at 0.01 whatever lr said).
    schedule = LearningRate(CyclicScheduleConfig(), base_lr=lr, epochs=12)
    rates = [schedule.at(step / 10) for step in range(120)]
    assert max(rates) == pytest.approx(lr) and min(rates) == pytest.approx(lr / 100)
    only_max = LearningRate(CyclicScheduleConfig(max_lr=0.5), base_lr=lr, epochs=12)
    assert [only_max.at(e) for e in (0, 2)] == pytest.approx([0.005, 0.5])


def test_the_default_schedule_follows_a_set_rate():
    from mtdsl.spec.load import load_text

    text = 'model m\nlet lr = 0.01\nbackbone t = timm("test_resnet")\ndataset d = synthetic()\n' \
           'task a: classify(d) { classes = 3 }\ntrain { optimizer = sgd(lr = ${lr}) }\n'
    spec = load_text(text, overrides={"lr": "10"})
    schedule = LearningRate(spec.train.schedule, base_lr=spec.train.optimizer.lr, epochs=spec.train.total_epochs)
    assert spec.train.schedule.kind == "cyclic" and max(schedule.at(e / 4) for e in range(40)) == pytest.approx(10.0)


def test_step_multiplies_by_gamma_every_n_epochs():
    schedule = LearningRate(StepScheduleConfig(every=2, gamma=0.5), base_lr=0.8, epochs=10)
    assert [schedule.at(e) for e in (0, 1.9, 2, 5)] == pytest.approx([0.8, 0.8, 0.4, 0.2])


def test_poly_falls_as_a_power_of_the_remaining_fraction_to_min_lr():
    schedule = LearningRate(PolyScheduleConfig(power=2.0, min_lr=0.01), base_lr=0.11, epochs=10)
    assert [schedule.at(e) for e in (0, 5, 10, 12)] == pytest.approx([0.11, 0.01 + 0.1 * 0.25, 0.01, 0.01])
    linear = LearningRate(PolyScheduleConfig(power=1.0), base_lr=0.1, epochs=4)
    assert [linear.at(e) for e in (1, 3)] == pytest.approx([0.075, 0.025])


def test_warmup_rises_linearly_then_hands_over():
    schedule = LearningRate(ConstantScheduleConfig(), base_lr=0.1, epochs=10, warmup=2)
    assert [schedule.at(e) for e in (0.5, 1, 2, 5)] == pytest.approx([0.025, 0.05, 0.1, 0.1])


def test_a_phase_lr_holds_during_its_phase_only():
    phases = [PhaseSpec(name="joint", epochs=3), PhaseSpec(name="finetune", epochs=2, lr=0.001)]
    schedule = LearningRate(CosineScheduleConfig(), base_lr=0.1, epochs=5, phases=phases)
    assert schedule.at(2.5) > 0.001
    assert schedule.at(3.0) > 0.001  # the step that ends epoch 3 is the joint phase's last
    assert schedule.at(3.01) == schedule.at(5.0) == 0.001


def test_every_step_of_a_phase_runs_at_that_phase_rate():
    """As the loop asks: each step's rate at the step's end, ``epoch + (position + 1) / steps``."""
    phases = [PhaseSpec(name="heads", epochs=2, lr=0.05), PhaseSpec(name="all", epochs=2)]
    schedule = LearningRate(CosineScheduleConfig(), base_lr=0.01, epochs=4, phases=phases)
    steps = 7
    rates = [[schedule.at(epoch + (position + 1) / steps) for position in range(steps)] for epoch in range(4)]
    assert all(rate == 0.05 for epoch in rates[:2] for rate in epoch)
    assert all(rate < 0.01 for epoch in rates[2:] for rate in epoch)
