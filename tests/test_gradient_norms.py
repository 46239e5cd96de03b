"""The backbone gradient's norm per stream: what it measures, and that a training run records it."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_training import records, train, write_spec
from torch import nn

from mtdsl.train.loop.gradients import GradientNorms


def _model() -> nn.ModuleDict:
    return nn.ModuleDict({"backbone": nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), "heads": nn.Linear(2, 1)})


def _set_gradients(model: nn.Module, values: list[float]) -> float:
    """Give every backbone parameter a constant gradient; the head gets a huge one that must not count."""
    total = 0.0
    for parameter, value in zip(model["backbone"].parameters(), values, strict=False):
        parameter.grad = torch.full_like(parameter, value)
        total += value**2 * parameter.numel()
    model["heads"].weight.grad = torch.full_like(model["heads"].weight, 1e6)
    return math.sqrt(total)


finite = st.floats(-100, 100, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 1), st.lists(finite, min_size=4, max_size=4)), min_size=1, max_size=8),
       scale=st.sampled_from([1.0, 2.0, 65536.0]))
def test_mean_and_max_per_stream_are_those_of_the_backbone_norms(steps, scale):
    model = _model()
    norms = GradientNorms(model, ["a", "b"])
    expected: dict[str, list[float]] = {"a": [], "b": []}
    for stream, values in steps:
        expected["ab"[stream]].append(_set_gradients(model, [v * scale for v in values]) / scale)
        norms.record(stream, scale)
    summary = norms.summary()
    assert set(summary) == {label for label, seen in expected.items() if seen}
    for label, of_label in summary.items():
        assert of_label["mean"] == pytest.approx(sum(expected[label]) / len(expected[label]), rel=1e-5, abs=1e-5)
        assert of_label["max"] == pytest.approx(max(expected[label]), rel=1e-5, abs=1e-5)


def test_a_frozen_backbone_and_a_non_finite_gradient_record_nothing():
    model = _model()
    norms = GradientNorms(model, ["a"])
    norms.record(0)  # no gradients at all: a frozen backbone
    _set_gradients(model, [1.0, float("inf"), 1.0, 1.0])
    norms.record(0)  # an overflowed fp16 step, which GradScaler skips
    assert norms.summary() == {}


def test_an_interrupted_epoch_continues_its_sums():
    model = _model()
    first = GradientNorms(model, ["a"])
    _set_gradients(model, [1.0, 2.0, 3.0, 4.0])
    first.record(0)
    resumed = GradientNorms(model, ["a"])
    resumed.load_state_dict(first.state_dict())
    _set_gradients(model, [0.5, 0.5, 0.5, 0.5])
    first.record(0)
    resumed.record(0)
    assert resumed.summary() == first.summary()
    resumed.load_state_dict(None)  # a checkpoint from before this record existed
    assert resumed.summary() == {}


def test_a_run_records_each_streams_norm_before_clipping_and_none_while_the_backbone_is_frozen(tmp_path):
    spec = write_spec(tmp_path, "    grad_clip = 0.001\n    phase heads { epochs = 1; freeze = [backbones] }\n"
                                "    phase all { epochs = 1 }")
    assert train(spec, tmp_path / "run") == 0
    heads, every_layer = records(tmp_path / "run", "train")
    assert heads["backbone_gradient_norm"] == {}
    norms = every_layer["backbone_gradient_norm"]
    assert set(norms) == {"shape+colour", "large"}
    for stream in norms.values():
        assert 0.001 < stream["mean"] <= stream["max"] < math.inf  # measured before grad_clip cut it to 0.001
