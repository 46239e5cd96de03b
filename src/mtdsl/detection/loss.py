"""Detection losses: sigmoid focal loss for classes, Huber for boxes, and the :class:`DetectionLoss` shell.

Shapes: ``N`` images, ``A`` anchors (in :func:`~mtdsl.detection.anchors.generate_anchors`
order), ``C`` classes. Class targets are ``(N, A)`` int64 from the labeller:
a class index in ``[0, C)``, ``-1`` for background or ``-2`` for ignore.

**There is no background class.** Each of the ``C`` logits is its own sigmoid
"is it class c?" and the class target becomes a one-hot row in which
background is the all-zero row. So with ``C = 1`` a one-class detector has a
single logit, trained toward 1 on anchors matched to class 0 and toward 0 on
background anchors; the dataset's one class is id 0, and no id is reserved
for background (the thesis' §6.5 pitfall — class ids starting at 1 so that
0 could mean background — does not arise; the labeller rejects ids ``>= C``
when told ``num_classes``).

**Cross-dataset class masks** (thesis §5.3, Yao et al. 2020). When datasets
that annotate different classes train one head, ``class_mask[n, c] = False``
says image ``n``'s dataset does not annotate class ``c``; the loss of logit
``c`` is then zero at every anchor of that image, so an unlabelled car in a
stop-sign dataset is never taught as background, and class ``c`` learns only
from datasets that label it.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mtdsl.detection.anchors import IGNORE

BoxLossKind = Literal["huber", "smooth_l1"]


def focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    class_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al. 2017) over one-hot targets, summed per image.

    With ``p = σ(x)`` for each logit ``x`` and ``y ∈ {0, 1}`` its one-hot target
    (``y[n, a, c] = 1`` iff ``targets[n, a] == c``; background rows are all zero)::

        p_t = p if y = 1 else 1 - p
        α_t = α if y = 1 else 1 - α
        FL  = -α_t · (1 - p_t)^γ · log(p_t)       (log(p_t) computed stably from x)

        loss[n] = Σ_a Σ_c  FL[n, a, c] · [targets[n, a] != -2] · class_mask[n, c]

    Masked terms (ignored anchors, unannotated classes) are exactly zero in
    value and in gradient. Out-of-range class ids are not checked here (that
    would sync the device); the labeller checks them.

    Args:
        logits: ``(N, A, C)`` raw class scores.
        targets: ``(N, A)`` int64: class in ``[0, C)``, -1 background, -2 ignore.
        alpha: weight ``α`` of the positive terms; negatives get ``1 - α``.
        gamma: focusing exponent ``γ``; 0 gives α-weighted binary cross-entropy.
        class_mask: ``(N, C)`` bool, ``False`` where image ``n``'s dataset does
            not annotate class ``c``; ``None`` means every class is annotated.

    Returns:
        ``(N,)`` float32, the unnormalised loss of each image.
    """
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(
            f"focal_loss wants logits (N, A, C) and targets (N, A), "
            f"got {tuple(logits.shape)} and {tuple(targets.shape)}"
        )
    keep = (targets != IGNORE).unsqueeze(-1)  # (N, A, 1)
    if class_mask is not None:
        if class_mask.shape != (logits.shape[0], logits.shape[2]) or class_mask.dtype != torch.bool:
            raise ValueError(
                f"class_mask must be a bool tensor (N, C) = {(logits.shape[0], logits.shape[2])}, "
                f"got {class_mask.dtype} {tuple(class_mask.shape)}"
            )
        keep = keep & class_mask.unsqueeze(1)  # (N, A, C)
    keep = keep.expand_as(logits)
    # Cut masked logits out of the graph before any maths: where's backward writes zeros,
    # so their gradient is exactly 0 even if a term below were inf (γ < 1 at p_t = 1).
    logits = torch.where(keep, logits.float(), logits.detach().float())

    classes = torch.arange(logits.shape[-1], device=logits.device)
    one_hot = (targets.unsqueeze(-1) == classes).to(logits.dtype)  # -1 and -2 give all-zero rows
    probability = torch.sigmoid(logits)
    p_t = one_hot * probability + (1 - one_hot) * (1 - probability)
    alpha_t = one_hot * alpha + (1 - one_hot) * (1 - alpha)
    cross_entropy = F.binary_cross_entropy_with_logits(logits, one_hot, reduction="none")  # -log(p_t)
    loss = alpha_t * (1 - p_t) ** gamma * cross_entropy
    return torch.where(keep, loss, torch.zeros_like(loss)).sum(dim=(1, 2))


def box_loss(
    deltas: torch.Tensor,
    box_targets: torch.Tensor,
    positives: torch.Tensor,
    *,
    kind: BoxLossKind = "huber",
    delta: float = 0.1,
) -> torch.Tensor:
    """Box regression loss over positive anchors, summed per image.

    With ``e = deltas - box_targets`` per coordinate::

        huber:      0.5 · e²              if |e| < δ else δ · (|e| - 0.5 · δ)
        smooth_l1:  0.5 · e² / δ          if |e| < δ else |e| - 0.5 · δ       (= huber / δ)

        loss[n] = Σ_a Σ_k  ℓ(e[n, a, k]) · positives[n, a]

    effdet uses huber with ``δ = 0.1``, about the size of typical targets.

    Args:
        deltas: ``(N, A, 4)`` predicted ``(dx, dy, dw, dh)``.
        box_targets: ``(N, A, 4)`` encoded targets (zero where not positive).
        positives: ``(N, A)`` bool, anchors matched to a box.
        kind: ``"huber"`` or ``"smooth_l1"``.
        delta: ``δ``, where the loss turns from quadratic to linear.

    Returns:
        ``(N,)`` float32, the unnormalised loss of each image.
    """
    if deltas.shape != box_targets.shape or deltas.shape[:-1] != positives.shape or deltas.shape[-1] != 4:
        raise ValueError(
            f"box_loss wants deltas and box_targets (N, A, 4) and positives (N, A), got {tuple(deltas.shape)}, "
            f"{tuple(box_targets.shape)} and {tuple(positives.shape)}"
        )
    deltas, box_targets = deltas.float(), box_targets.float()
    if kind == "huber":
        loss = F.huber_loss(deltas, box_targets, reduction="none", delta=delta)
    elif kind == "smooth_l1":
        loss = F.smooth_l1_loss(deltas, box_targets, reduction="none", beta=delta)
    else:
        raise ValueError(f"unknown box loss {kind!r}; valid kinds: 'huber', 'smooth_l1'")
    return torch.where(positives.unsqueeze(-1), loss, torch.zeros_like(loss)).sum(dim=(1, 2))


class DetectionLoss(nn.Module):
    """effdet's detection loss: focal class loss plus weighted box loss, per positive anchor.

    With ``P = Σ_n num_positives[n] + 1`` (summed over the batch; the 1 keeps a
    batch without positives finite)::

        class_loss = Σ_n focal_loss[n] / P
        box_loss   = Σ_n box_loss[n] / (4 · P)            (mean per coordinate, as effdet)
        loss       = class_loss + box_weight · box_loss

    Args:
        alpha: focal ``α``.
        gamma: focal ``γ``.
        box_weight: weight of the box loss (effdet: 50 with huber ``δ = 0.1``).
        box_loss: ``"huber"`` or ``"smooth_l1"``.
        delta: the box loss's ``δ``.
    """

    def __init__(
        self,
        alpha: float = 0.25,
        gamma: float = 2.0,
        box_weight: float = 50.0,
        box_loss: BoxLossKind = "huber",
        delta: float = 0.1,
    ) -> None:
        super().__init__()
        if box_loss not in ("huber", "smooth_l1"):
            raise ValueError(f"unknown box loss {box_loss!r}; valid kinds: 'huber', 'smooth_l1'")
        self.alpha = alpha
        self.gamma = gamma
        self.box_weight = box_weight
        self.box_loss = box_loss
        self.delta = delta

    def forward(
        self,
        class_logits: torch.Tensor,
        box_deltas: torch.Tensor,
        cls_targets: torch.Tensor,
        box_targets: torch.Tensor,
        num_positives: torch.Tensor | None = None,
        class_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The batch's losses.

        Args:
            class_logits: ``(N, A, C)``.
            box_deltas: ``(N, A, 4)``.
            cls_targets: ``(N, A)`` int64 from :func:`~mtdsl.detection.anchors.batch_targets`.
            box_targets: ``(N, A, 4)``.
            num_positives: ``(N,)``; counted from ``cls_targets >= 0`` when ``None``.
            class_mask: ``(N, C)`` bool or ``None``, see :func:`focal_loss`.

        Returns:
            ``{"loss", "class_loss", "box_loss"}``, 0-dim float32 tensors; ``box_loss``
            is unweighted.
        """
        positives = cls_targets >= 0
        if num_positives is None:
            num_positives = positives.sum(dim=1)
        normaliser = num_positives.sum().float() + 1.0
        class_loss = focal_loss(class_logits, cls_targets, self.alpha, self.gamma, class_mask).sum() / normaliser
        boxes = box_loss(box_deltas, box_targets, positives, kind=self.box_loss, delta=self.delta).sum()
        boxes = boxes / (4.0 * normaliser)
        return {"loss": class_loss + self.box_weight * boxes, "class_loss": class_loss, "box_loss": boxes}

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, gamma={self.gamma}, box_weight={self.box_weight}, "
            f"box_loss={self.box_loss!r}, delta={self.delta}"
        )
