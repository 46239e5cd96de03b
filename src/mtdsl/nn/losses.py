"""Task losses: pure functions with a thin ``nn.Module`` shell, keyed like their configs.

``cross_entropy`` serves single-label classification and segmentation (per
pixel, skipping :data:`IGNORE_INDEX`, optionally plus a Dice term); ``bce`` and
``focal`` serve binary and multi-label tasks, where targets are 0/1 per logit;
``detection`` is EfficientDet's focal + box loss on anchors. Their configs live
in :mod:`mtdsl.spec.losses` (re-exported here for code written before they moved).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import sigmoid_focal_loss

from mtdsl.detection.bench import DetectionCriterion, DetectionSetup
from mtdsl.detection.loss import DetectionLoss
from mtdsl.spec.losses import (
    LOSS_CONFIGS,
    BinaryCrossEntropyConfig,
    CrossEntropyConfig,
    DetectionLossConfig,
    FocalConfig,
    LossConfig,
    losses_for,
)
from mtdsl.spec.registry import Builders

__all__ = [
    "LOSS_BUILDERS", "LOSS_CONFIGS", "BinaryCrossEntropyConfig", "CrossEntropyConfig", "DetectionLossConfig",
    "FocalConfig", "LossConfig", "build_loss", "losses_for", "register_loss",
]

#: The target value segmentation losses and metrics skip: void pixels and letterbox padding.
IGNORE_INDEX = 255

LOSS_BUILDERS: Builders[Callable[..., nn.Module]] = Builders(LOSS_CONFIGS)
#: Register ``builder(config, task_kind, detection) -> nn.Module`` under a loss kind.
register_loss = LOSS_BUILDERS.register


def build_loss(config: LossConfig, task_kind: str | None = None, detection: DetectionSetup | None = None) -> nn.Module:
    """The loss module of a task of ``task_kind``; a detect task's also needs its :class:`DetectionSetup`."""
    return LOSS_BUILDERS.build(config, task_kind=task_kind, detection=detection)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017) for binary and multi-label logits, averaged over elements.

    ``FL(p_t) = -α_t (1 - p_t)^γ log(p_t)`` where ``p_t = p`` for positives and
    ``1 - p`` for negatives, ``α_t = α`` for positives and ``1 - α`` for negatives:
    :func:`torchvision.ops.sigmoid_focal_loss` with ``reduction="mean"`` (the
    spec keeps ``α`` in [0, 1], so torchvision's "no α when negative" never applies).

    Args:
        alpha: the weight of the positive terms.
        gamma: the focusing exponent.
    """

    def __init__(self, alpha: float, gamma: float) -> None:
        super().__init__()
        self.alpha = alpha
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``logits`` ``(N, C)`` (or ``(N,)``) and 0/1 ``targets`` of as many elements; returns the scalar mean."""
        targets = targets.view_as(logits).to(logits.dtype)
        return sigmoid_focal_loss(logits, targets, self.alpha, self.gamma, reduction="mean")


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


def soft_dice_loss(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """``1 - mean_c (2 Σ p_c t_c + 1) / (Σ p_c + Σ t_c + 1)`` over softmax probabilities, skipping ignored pixels.

    Args:
        logits: ``(N, C, H, W)``.
        targets: ``(N, H, W)`` int64 class indices or ``ignore_index``.
    """
    valid = (targets != ignore_index).unsqueeze(1)
    probabilities = torch.softmax(logits, dim=1) * valid
    one_hot = F.one_hot(targets.clamp(0, logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2) * valid
    dims = (0, 2, 3)
    overlap = (probabilities * one_hot).sum(dims)
    total = probabilities.sum(dims) + one_hot.sum(dims)
    return 1 - ((2 * overlap + 1) / (total + 1)).mean()


class SegmentationLoss(nn.Module):
    """Per-pixel cross-entropy skipping :data:`IGNORE_INDEX`, plus ``dice`` × :func:`soft_dice_loss`.

    Shapes: ``logits (N, C, H, W)``, ``targets (N, H, W)`` int64.
    """

    def __init__(self, label_smoothing: float = 0.0, dice: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing
        self.dice = dice

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.shape[-2:] != targets.shape[-2:]:
            logits = F.interpolate(logits, size=targets.shape[-2:], mode="bilinear", align_corners=False)
        if not (targets != IGNORE_INDEX).any():
            return logits.sum() * 0.0  # a batch of void pixels teaches nothing (and cross-entropy would be nan)
        loss = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing)
        if self.dice:
            loss = loss + self.dice * soft_dice_loss(logits, targets)
        return loss


@register_loss("cross_entropy")
def _build_cross_entropy(config: CrossEntropyConfig, task_kind: str | None = None, **_: object) -> nn.Module:
    if task_kind == "segment":
        return SegmentationLoss(config.label_smoothing, config.dice)
    if config.dice:
        raise ValueError("cross_entropy(dice = …) applies to segment tasks only")
    return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)


@register_loss("detection")
def _build_detection(
    config: DetectionLossConfig, detection: DetectionSetup | None = None, **_: object
) -> nn.Module:
    if detection is None:
        raise ValueError("a detection loss needs the task's DetectionSetup (anchors and matching)")
    loss = DetectionLoss(config.alpha, config.gamma, config.box_weight, config.box, config.delta)
    return DetectionCriterion(loss, detection)


@register_loss("bce")
def _build_bce(config: BinaryCrossEntropyConfig, **_: object) -> nn.Module:
    return BinaryCrossEntropy(config.pos_weight)


@register_loss("focal")
def _build_focal(config: FocalConfig, **_: object) -> nn.Module:
    return FocalLoss(config.alpha, config.gamma)
