"""The binary/multi-label focal loss: torchvision's ``sigmoid_focal_loss``, checked against its formula."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtdsl.nn.losses import build_loss
from mtdsl.spec.losses import FocalConfig


def _formula(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> float:
    """``mean(-α_t (1 - p_t)^γ log p_t)`` element by element, in float64."""
    total = 0.0
    for x, y in zip(logits.double().flatten().tolist(), targets.double().flatten().tolist()):
        p = 1 / (1 + math.exp(-x))
        p_t, alpha_t = (p, alpha) if y == 1 else (1 - p, 1 - alpha)
        total += -alpha_t * (1 - p_t) ** gamma * math.log(max(p_t, 1e-300))
    return total / logits.numel()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shape=st.sampled_from([(6,), (5, 3), (2, 7)]),
    alpha=st.floats(0.0, 1.0),
    gamma=st.floats(0.0, 5.0),
)
def test_focal_loss_is_the_focal_formula_averaged(seed, shape, alpha, gamma):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=generator) * 3
    targets = (torch.rand(shape, generator=generator) > 0.6).long()  # integer targets are converted
    loss = build_loss(FocalConfig(alpha=alpha, gamma=gamma), task_kind="multilabel")(logits, targets)
    assert loss.shape == () and math.isclose(float(loss), _formula(logits, targets, alpha, gamma),
                                             rel_tol=1e-5, abs_tol=1e-7)


def test_focal_loss_takes_one_logit_binary_targets_shaped_n():
    logits = torch.tensor([[2.0], [-1.0], [0.5]], requires_grad=True)
    loss = build_loss(FocalConfig(), task_kind="binary")(logits, torch.tensor([1, 0, 0]))
    loss.backward()
    assert math.isclose(loss.item(), _formula(logits.detach(), torch.tensor([[1], [0], [0]]), 0.25, 2.0), rel_tol=1e-5)
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
