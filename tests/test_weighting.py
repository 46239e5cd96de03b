"""Loss weighting methods: constant, uncertainty (learned) and DWA."""

from __future__ import annotations

import math

import pytest
import torch

from mtdsl.spec.training import WEIGHTINGS, ConstantWeighting, DwaWeighting, UncertaintyWeighting
from mtdsl.train.loop.weighting import WEIGHTING_METHODS, build_weighting


def test_every_registered_weighting_kind_has_a_method():
    assert set(WEIGHTINGS.kinds()) == set(WEIGHTING_METHODS)


def test_constant_weights_only_the_tasks_present():
    combine = build_weighting(ConstantWeighting(), {"a": 2.0, "b": 0.5, "c": 1.0})
    assert combine({"a": torch.tensor(1.0), "c": torch.tensor(3.0)}).item() == pytest.approx(5.0)


def test_uncertainty_log_variances_are_learned_towards_half_the_inverse_loss():
    combine = build_weighting(UncertaintyWeighting(), {"easy": 1.0, "hard": 1.0})
    optimizer = torch.optim.SGD(combine.parameters(), lr=0.1)
    losses = {"easy": torch.tensor(0.1), "hard": torch.tensor(2.0)}
    for _ in range(500):
        optimizer.zero_grad()
        combine(losses).backward()
        optimizer.step()
    learned = {task: s.item() for task, s in combine.log_variance.items()}
    # The optimum of exp(-s) L + s / 2 is s = log(2 L).
    assert learned["easy"] == pytest.approx(math.log(0.2), abs=0.05)
    assert learned["hard"] == pytest.approx(math.log(4.0), abs=0.05)
    factors = combine.factors()
    assert factors["hard"] < factors["easy"]


def test_uncertainty_parameters_reach_the_optimizer_without_weight_decay():
    from mtdsl.spec.training import SgdConfig
    from mtdsl.train.loop.optimizer import build_optimizer

    combine = build_weighting(UncertaintyWeighting(), {"a": 1.0})
    optimizer = build_optimizer(SgdConfig(weight_decay=0.1), torch.nn.Linear(2, 2), combine)
    group = next(g for g in optimizer.param_groups if any(p is combine.log_variance["a"] for p in g["params"]))
    assert group["weight_decay"] == 0.0


def test_dwa_weights_the_task_whose_loss_falls_slowest():
    combine = build_weighting(DwaWeighting(temperature=2.0), {"fast": 1.0, "slow": 1.0})
    combine.end_epoch({"fast": 1.0, "slow": 1.0})
    assert combine.factors() == {"fast": 1.0, "slow": 1.0}  # needs two epochs of history
    combine.end_epoch({"fast": 0.5, "slow": 0.9})
    factors = combine.factors()
    assert factors["slow"] > 1.0 > factors["fast"]
    assert sum(factors.values()) == pytest.approx(2.0)
    expected_slow = 2 * math.exp(0.9 / 2) / (math.exp(0.5 / 2) + math.exp(0.9 / 2))
    assert factors["slow"] == pytest.approx(expected_slow)


def test_dwa_history_survives_a_state_dict_round_trip():
    combine = build_weighting(DwaWeighting(), {"a": 1.0, "b": 1.0})
    combine.end_epoch({"a": 1.0, "b": 1.0})
    combine.end_epoch({"a": 0.5, "b": 1.0})
    restored = build_weighting(DwaWeighting(), {"a": 1.0, "b": 1.0})
    restored.load_state_dict(combine.state_dict())
    assert restored.factors() == combine.factors()
    restored.end_epoch({"a": 0.4, "b": 0.9})
    combine.end_epoch({"a": 0.4, "b": 0.9})
    assert restored.factors() == combine.factors()
