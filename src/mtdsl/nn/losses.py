"""Task losses: pure functions with a thin ``nn.Module`` shell, keyed like their configs.

``cross_entropy`` serves single-label classification (skipping the targets of
images whose class is unknown, ``-100``) and segmentation (per pixel, skipping
:data:`IGNORE_INDEX`, optionally plus a Dice term); ``bce`` and
``focal`` serve binary and multi-label tasks, where targets are 0/1 per logit,
or nan where the image's dataset does not say (partial labels: the element
adds nothing to the loss and gets no gradient); ``detection`` is
EfficientDet's focal + box loss on anchors; ``heatmap_focal`` serves tasks of named points
(a focal loss on Gaussian heatmaps). Their configs live
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
from mtdsl.kinds import TASK_KINDS
from mtdsl.spec.losses import (
    LOSS_CONFIGS,
    BinaryCrossEntropyConfig,
    CrossEntropyConfig,
    DetectionLossConfig,
    FocalConfig,
    HeatmapFocalConfig,
    LossConfig,
    losses_for,
)
from mtdsl.spec.registry import Builders

__all__ = [
    "LOSS_BUILDERS", "LOSS_CONFIGS", "BinaryCrossEntropyConfig", "ClassCrossEntropy", "CrossEntropyConfig",
    "DetectionLossConfig", "FocalConfig", "HeatmapFocalConfig", "HeatmapFocalLoss", "LossConfig", "build_loss",
    "losses_for", "register_loss",
]

#: The target value segmentation losses and metrics skip: void pixels and letterbox padding.
IGNORE_INDEX = 255

LOSS_BUILDERS: Builders[Callable[..., nn.Module]] = Builders(LOSS_CONFIGS)
#: Register ``builder(config, task_kind, detection) -> nn.Module`` under a loss kind.
register_loss = LOSS_BUILDERS.register


def build_loss(config: LossConfig, task_kind: str | None = None, detection: DetectionSetup | None = None) -> nn.Module:
    """The loss module of a task of ``task_kind``; a detect task's also needs its :class:`DetectionSetup`."""
    return LOSS_BUILDERS.build(config, task_kind=task_kind, detection=detection)


def known_targets(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``targets`` with their unknown (nan) elements set to 0, and the bool mask of the known ones."""
    known = ~torch.isnan(targets)
    return torch.where(known, targets, torch.zeros_like(targets)), known


def known_mean(losses: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The mean of ``losses`` over the ``known`` elements (0 when none is): unknown ones get no gradient.

    With every element known it is ``losses.mean()``; it never synchronises with the GPU.
    """
    return torch.where(known, losses, torch.zeros_like(losses)).sum() / known.sum().clamp(min=1)


class ClassCrossEntropy(nn.CrossEntropyLoss):
    """``nn.CrossEntropyLoss`` whose batch of unknown classes only is a loss of 0, not nan.

    Targets equal to ``ignore_index`` (-100, PyTorch's default and the class target of a
    manifest's ``unknown`` cell) add nothing and get no gradient; the loss is the mean over the
    others (weighted by ``weight`` of their classes, as PyTorch weighs it), with label smoothing
    as PyTorch applies it. It never synchronises with the GPU.

    Shapes: ``logits (N, C)``, ``targets (N,)`` int64.
    """

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        losses = F.cross_entropy(logits, targets, weight=self.weight, ignore_index=self.ignore_index,
                                 reduction="none", label_smoothing=self.label_smoothing)
        known = targets != self.ignore_index
        if self.weight is None:
            return known_mean(losses, known)
        weights = torch.where(known, self.weight[targets.clamp(min=0)], torch.zeros_like(losses))
        return losses.sum() / weights.sum().clamp(min=torch.finfo(losses.dtype).tiny)


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
        """``logits`` ``(N, C)`` (or ``(N,)``) and 0/1 ``targets`` of as many elements, nan where unknown;
        returns the mean over the known elements (the unknown ones get no gradient)."""
        targets, known = known_targets(targets.view_as(logits).to(logits.dtype))
        return known_mean(sigmoid_focal_loss(logits, targets, self.alpha, self.gamma, reduction="none"), known)


class BinaryCrossEntropy(nn.Module):
    """BCE with logits that accepts targets shaped ``(N,)`` for one-logit binary heads."""

    def __init__(self, pos_weight: float | None) -> None:
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight = None if self.pos_weight is None else logits.new_tensor(self.pos_weight)
        targets, known = known_targets(targets.view_as(logits).to(logits.dtype))
        losses = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=weight, reduction="none")
        return known_mean(losses, known)


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


def partial_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, annotated: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Per-pixel cross-entropy of images that each label only some classes, skipping :data:`IGNORE_INDEX`.

    Each image's softmax runs over the classes its dataset labels alone, so
    ``-log softmax_A(z)_t`` with ``A`` the image's annotated classes: a class
    outside ``A`` gets exactly zero gradient from the image (its "background"
    may hide that class). Label smoothing spreads over ``A``. With every class
    annotated it equals ``F.cross_entropy(..., ignore_index=IGNORE_INDEX)``.

    Args:
        logits: ``(N, C, H, W)``.
        targets: ``(N, H, W)`` int64 class indices (each in its image's ``A``) or ``IGNORE_INDEX``.
        annotated: ``(N, C)`` bool, the classes each image's dataset labels.
    """
    shown = annotated[:, :, None, None]
    log_p = torch.log_softmax(logits.masked_fill(~shown, float("-inf")), dim=1)
    valid = targets != IGNORE_INDEX
    picked = log_p.gather(1, torch.where(valid, targets, torch.zeros_like(targets)).unsqueeze(1)).squeeze(1)
    loss = -picked
    if label_smoothing:
        spread = -log_p.masked_fill(~shown, 0.0).sum(1) / annotated.sum(1).clamp(min=1)[:, None, None]
        loss = (1 - label_smoothing) * loss + label_smoothing * spread
    return torch.where(valid, loss, torch.zeros_like(loss)).sum() / valid.sum().clamp(min=1)


class SegmentationLoss(nn.Module):
    """Per-pixel cross-entropy skipping :data:`IGNORE_INDEX`, plus ``dice`` × :func:`soft_dice_loss`.

    Shapes: ``logits (N, C, H, W)``, ``targets (N, H, W)`` int64, or for a
    task that joins datasets ``{"mask": (N, H, W), "annotated": (N, C) bool}``
    (see :func:`partial_cross_entropy`; the Dice term then reads the softmax
    over each image's annotated classes).
    """

    def __init__(self, label_smoothing: float = 0.0, dice: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing
        self.dice = dice

    def forward(self, logits: torch.Tensor, targets: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        annotated = targets["annotated"] if isinstance(targets, dict) else None
        targets = targets["mask"] if isinstance(targets, dict) else targets
        if logits.shape[-2:] != targets.shape[-2:]:
            logits = F.interpolate(logits, size=targets.shape[-2:], mode="bilinear", align_corners=False)
        if annotated is not None:
            loss = partial_cross_entropy(logits, targets, annotated, self.label_smoothing)
            if self.dice:
                shown = logits.masked_fill(~annotated[:, :, None, None], float("-inf"))
                loss = loss + self.dice * soft_dice_loss(shown, targets)
            return loss
        if not (targets != IGNORE_INDEX).any():
            return logits.sum() * 0.0  # a batch of void pixels teaches nothing (and cross-entropy would be nan)
        loss = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing)
        if self.dice:
            loss = loss + self.dice * soft_dice_loss(logits, targets)
        return loss


@register_loss("cross_entropy")
def _build_cross_entropy(config: CrossEntropyConfig, task_kind: str | None = None, **_: object) -> nn.Module:
    if task_kind is not None and TASK_KINDS[task_kind].targets == "masks":
        return SegmentationLoss(config.label_smoothing, config.dice)
    if config.dice:
        raise ValueError(f"cross_entropy(dice = …) applies to {TASK_KINDS.spelled(lambda kind: kind.dice)} tasks only")
    return ClassCrossEntropy(label_smoothing=config.label_smoothing)


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


def point_heatmaps(points: torch.Tensor, canvas: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """Gaussian target heatmaps ``(N, K, h, w)`` of ``points`` ``(N, K, 2)`` in input pixels, 1 at each point.

    Cell ``j`` of a ``w``-wide heatmap covers input pixels ``[j, j + 1) * W / w`` (``canvas``
    ``(N, 2)`` holds each input's ``(W, H)``), so a point at ``x`` sits at cell coordinate
    ``x * w / W - 1/2``, and its Gaussian of ``sigma`` cells is centred there, between cells.
    """
    h, w = size
    centre_x = points[..., 0] * (w / canvas[:, None, 0]) - 0.5
    centre_y = points[..., 1] * (h / canvas[:, None, 1]) - 0.5
    xs = torch.arange(w, device=points.device, dtype=points.dtype)
    ys = torch.arange(h, device=points.device, dtype=points.dtype)
    across = torch.exp(-((xs - centre_x[..., None]) ** 2) / (2 * sigma**2))
    down = torch.exp(-((ys - centre_y[..., None]) ** 2) / (2 * sigma**2))
    return down[..., :, None] * across[..., None, :]


class HeatmapFocalLoss(nn.Module):
    """A focal loss on per-point Gaussian heatmaps: the quality focal loss (Li et al. 2020, GFL).

    With ``p`` the sigmoid of a cell's logit and ``y`` its Gaussian target (:func:`point_heatmaps`)::

        L = 1/P Σ |y - p|^β · BCE(p, y)

    over the heatmaps of labelled points only (an unlabelled point's heatmap adds nothing and
    gets no gradient), ``P`` the number of labelled points. Cells far from a point (``y`` near 0)
    that the model already calls background weigh almost nothing, as in CenterNet's focal loss;
    unlike it, the target is the Gaussian itself, so a learned heatmap's peak lies between cells
    where the point does, and :func:`~mtdsl.nn.heads.heatmap.decode_heatmaps` finds it there.

    Shapes: ``logits (N, K, h, w)``; ``targets {"points": (N, K, 2) input pixels, "labelled":
    (N, K) bool, "canvas": (N, 2) the input's (width, height)}``.
    """

    def __init__(self, sigma: float = 2.0, beta: float = 2.0) -> None:
        super().__init__()
        self.sigma, self.beta = sigma, beta

    def forward(self, logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = logits.float()
        height, width = logits.shape[-2:]
        wanted = point_heatmaps(targets["points"].float(), targets["canvas"].float(), (height, width), self.sigma)
        labelled = targets["labelled"].bool()[..., None, None]
        losses = (wanted - logits.sigmoid()).abs() ** self.beta * F.binary_cross_entropy_with_logits(
            logits, wanted, reduction="none")
        losses = torch.where(labelled, losses, torch.zeros_like(losses))
        return losses.sum() / labelled.sum().clamp(min=1)


@register_loss("heatmap_focal")
def _build_heatmap_focal(config: HeatmapFocalConfig, **_: object) -> nn.Module:
    return HeatmapFocalLoss(config.sigma, config.beta)
