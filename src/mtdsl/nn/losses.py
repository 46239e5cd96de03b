"""Task losses: pure functions with a thin ``nn.Module`` shell, keyed like their configs.

``cross_entropy`` serves single-label classification and segmentation (per
pixel, skipping :data:`IGNORE_INDEX`, optionally plus a Dice term); ``bce`` and
``focal`` serve binary and multi-label tasks, where targets are 0/1 per logit;
``detection`` is EfficientDet's focal + box loss on anchors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from mtdsl.detection.bench import DetectionCriterion, DetectionSetup
from mtdsl.detection.loss import DetectionLoss
from mtdsl.spec.fields import Fraction, PositiveWeight, Weight
from mtdsl.spec.registry import Config, Registry

#: The focal loss's focusing exponent; 2 is the usual value, and past ~10 every easy example weighs nothing.
MAX_GAMMA = 20.0
#: The Huber loss's delta, in box-delta units (EfficientDet uses 0.1).
MAX_DELTA = 100.0

#: The target value segmentation losses and metrics skip: void pixels and letterbox padding.
IGNORE_INDEX = 255


class LossConfig(Config):
    kind: str
    task_kinds: ClassVar[frozenset[str]] = frozenset()


LOSS_CONFIGS: Registry[LossConfig] = Registry("loss")
LOSS_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_loss(kind: str):
    """Register ``builder(config, task_kind, detection) -> nn.Module`` under a loss kind."""

    def decorate(builder: Callable[..., nn.Module]):
        LOSS_BUILDERS[kind] = builder
        return builder

    return decorate


def losses_for(task_kind: str) -> list[str]:
    return [kind for kind in LOSS_CONFIGS.kinds() if task_kind in LOSS_CONFIGS.get(kind).task_kinds]


def build_loss(config: LossConfig, task_kind: str | None = None, detection: DetectionSetup | None = None) -> nn.Module:
    """The loss module of a task of ``task_kind``; a detect task's also needs its :class:`DetectionSetup`."""
    return LOSS_BUILDERS[config.kind](config, task_kind=task_kind, detection=detection)


@LOSS_CONFIGS.register("cross_entropy")
class CrossEntropyConfig(LossConfig):
    """``cross_entropy(label_smoothing = 0, dice = 0)``; ``dice`` (segment tasks only) adds that weight of Dice loss."""

    kind: Literal["cross_entropy"] = "cross_entropy"
    label_smoothing: Fraction = 0.0
    dice: Weight = 0.0

    task_kinds = frozenset({"classify", "segment"})


@LOSS_CONFIGS.register("detection")
class DetectionLossConfig(LossConfig):
    """``detection(alpha = 0.25, gamma = 2, box = huber, box_weight = 50, delta = 0.1)``: focal class loss + box loss."""

    kind: Literal["detection"] = "detection"
    alpha: float = Field(default=0.25, ge=0.0, le=1.0)
    gamma: float = Field(default=2.0, ge=0.0, le=MAX_GAMMA)
    box: Literal["huber", "smooth_l1"] = "huber"
    box_weight: Weight = 50.0
    delta: float = Field(default=0.1, gt=0.0, le=MAX_DELTA)

    task_kinds = frozenset({"detect"})


@LOSS_CONFIGS.register("bce")
class BinaryCrossEntropyConfig(LossConfig):
    kind: Literal["bce"] = "bce"
    pos_weight: PositiveWeight | None = None

    task_kinds = frozenset({"binary", "multilabel"})


@LOSS_CONFIGS.register("focal")
class FocalConfig(LossConfig):
    kind: Literal["focal"] = "focal"
    alpha: float = Field(default=0.25, ge=0.0, le=1.0)
    gamma: float = Field(default=2.0, ge=0.0, le=MAX_GAMMA)

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
