"""Task losses: pure functions with a thin ``nn.Module`` shell, keyed like their configs.

``cross_entropy`` serves single-label classification; ``bce`` and ``focal``
serve binary and multi-label tasks, where targets are 0/1 per logit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat
from torch import nn

from mtdsl.spec.registry import Config, Registry


class LossConfig(Config):
    kind: str
    task_kinds: ClassVar[frozenset[str]] = frozenset()


LOSS_CONFIGS: Registry[LossConfig] = Registry("loss")
LOSS_BUILDERS: dict[str, Callable[[LossConfig], nn.Module]] = {}


def register_loss(kind: str):
    def decorate(builder: Callable[[LossConfig], nn.Module]):
        LOSS_BUILDERS[kind] = builder
        return builder

    return decorate


def losses_for(task_kind: str) -> list[str]:
    return [kind for kind in LOSS_CONFIGS.kinds() if task_kind in LOSS_CONFIGS.get(kind).task_kinds]


def build_loss(config: LossConfig) -> nn.Module:
    return LOSS_BUILDERS[config.kind](config)


@LOSS_CONFIGS.register("cross_entropy")
class CrossEntropyConfig(LossConfig):
    kind: Literal["cross_entropy"] = "cross_entropy"
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)

    task_kinds = frozenset({"classify"})


@LOSS_CONFIGS.register("bce")
class BinaryCrossEntropyConfig(LossConfig):
    kind: Literal["bce"] = "bce"
    pos_weight: PositiveFloat | None = None

    task_kinds = frozenset({"binary", "multilabel"})


@LOSS_CONFIGS.register("focal")
class FocalConfig(LossConfig):
    kind: Literal["focal"] = "focal"
    alpha: float = Field(default=0.25, ge=0.0, le=1.0)
    gamma: float = Field(default=2.0, ge=0.0)

    task_kinds = frozenset({"binary", "multilabel"})


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) averaged over elements.

    ``FL(p_t) = -α_t (1 - p_t)^γ log(p_t)`` where ``p_t = p`` for positives and
    ``1 - p`` for negatives, ``α_t = α`` for positives and ``1 - α`` for negatives.

    Args:
        logits: ``(N, C)`` raw scores.
        targets: ``(N, C)`` in {0, 1}.
    """
    targets = targets.to(logits.dtype)
    probability = torch.sigmoid(logits)
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probability * targets + (1 - probability) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * (1 - p_t) ** gamma * cross_entropy).mean()


class FocalLoss(nn.Module):
    def __init__(self, alpha: float, gamma: float) -> None:
        super().__init__()
        self.alpha = alpha
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return sigmoid_focal_loss(logits, targets.view_as(logits), self.alpha, self.gamma)


class BinaryCrossEntropy(nn.Module):
    """BCE with logits that accepts targets shaped ``(N,)`` for one-logit binary heads."""

    def __init__(self, pos_weight: float | None) -> None:
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight = None if self.pos_weight is None else logits.new_tensor(self.pos_weight)
        return F.binary_cross_entropy_with_logits(
            logits, targets.view_as(logits).to(logits.dtype), pos_weight=weight
        )


@register_loss("cross_entropy")
def _build_cross_entropy(config: CrossEntropyConfig) -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)


@register_loss("bce")
def _build_bce(config: BinaryCrossEntropyConfig) -> nn.Module:
    return BinaryCrossEntropy(config.pos_weight)


@register_loss("focal")
def _build_focal(config: FocalConfig) -> nn.Module:
    return FocalLoss(config.alpha, config.gamma)
