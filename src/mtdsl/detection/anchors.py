"""Anchors for every feature level, in the order the detection head flattens its outputs, and the IoU labeller.

**The anchor order is a contract with the detection head.** A head emits, for
each level ``l`` from ``min_level`` to ``max_level``, outputs of shape
``(N, num_anchors_per_location · K, H_l, W_l)``, channel ``a·K + k`` holding
output ``k`` of anchor ``a`` at that location (``K`` = number of classes, or 4
for boxes). :func:`mtdsl.nn.heads.dense.flatten_levels` permutes each to
``(N, H_l, W_l, num_anchors, K)``, reshapes to ``(N, H_l·W_l·num_anchors, K)``
and concatenates the levels. :func:`generate_anchors` lists anchors in exactly
that order::

    for level in min_level..max_level:        # coarsest last
        for y in 0..H_l-1:                    # row of the level's grid
            for x in 0..W_l-1:
                for scale in 0..num_scales-1:
                    for ratio in aspect_ratios:   # index a = scale·len(ratios) + ratio

which is effdet's order too. ``H_l = ceil(H / 2^l)`` and ``W_l = ceil(W / 2^l)``,
the size a stride-2, ``same``-padded pyramid produces; anchor centres sit on
that grid at ``((x + ½)·2^l, (y + ½)·2^l)``.

>>> config = AnchorConfig()
>>> num_anchors_per_location(config)
9
>>> feature_sizes(config, (128, 128))
[(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
>>> generate_anchors(config, (128, 128)).shape  # (256 + 64 + 16 + 4 + 1) · 9
torch.Size([3069, 4])
>>> generate_anchors(config, (128, 128))[0]  # level 3, cell (0, 0), scale 0, ratio 1:1
tensor([-12., -12.,  20.,  20.])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision.ops import box_iou

from mtdsl.detection.boxes import encode
from mtdsl.detection.setup import AnchorConfig, AnchorLabeler

#: Class target of an anchor that matched no box: every class logit is trained toward 0.
BACKGROUND = -1
#: Class target of an anchor whose best IoU falls between the thresholds: it adds no class loss.
IGNORE = -2


def num_anchors_per_location(config: AnchorConfig) -> int:
    """Anchors per grid cell: ``num_scales · len(aspect_ratios)`` (9 for effdet)."""
    return config.num_scales * len(config.aspect_ratios)


def feature_sizes(config: AnchorConfig, image_size: tuple[int, int]) -> list[tuple[int, int]]:
    """``(H_l, W_l) = (ceil(H / 2^l), ceil(W / 2^l))`` for each level, finest first.

    This is the grid a stride-2 pyramid with ``same`` padding yields; the head's
    feature maps must have these sizes for its outputs to line up with the anchors.
    """
    height, width = image_size
    return [(math.ceil(height / 2**level), math.ceil(width / 2**level)) for level in config.levels]


def generate_anchors(
    config: AnchorConfig,
    image_size: tuple[int, int],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Every anchor of an image, in head-output order (see the module docstring).

    Args:
        config: anchor layout.
        image_size: ``(height, width)`` of the network input in pixels.
        device: where to build the anchors.
        dtype: their floating dtype.

    Returns:
        ``(A, 4)`` anchors ``(x0, y0, x1, y1)`` in pixels, with
        ``A = Σ_l H_l · W_l · num_anchors_per_location``. Anchors near the border
        extend past the image; they are not clipped, as in effdet.
    """
    per_level = []
    for level, (grid_h, grid_w) in zip(config.levels, feature_sizes(config, image_size)):
        stride = 2.0**level
        # (scale, ratio) half sizes, scale-major to match channel index a = scale·R + ratio.
        half_sizes = torch.tensor(
            [
                (config.anchor_scale * stride * 2 ** (scale / config.num_scales) * rx / 2,
                 config.anchor_scale * stride * 2 ** (scale / config.num_scales) * ry / 2)
                for scale in range(config.num_scales)
                for rx, ry in config.aspect_ratios
            ],
            dtype=torch.float64,
        )  # (num_anchors, 2)
        centre_y = (torch.arange(grid_h, dtype=torch.float64) + 0.5) * stride
        centre_x = (torch.arange(grid_w, dtype=torch.float64) + 0.5) * stride
        cy, cx = torch.meshgrid(centre_y, centre_x, indexing="ij")  # (H_l, W_l), y-major
        centres = torch.stack((cx, cy), dim=-1)[:, :, None, :]  # (H_l, W_l, 1, 2)
        boxes = torch.cat((centres - half_sizes, centres + half_sizes), dim=-1)  # (H_l, W_l, num_anchors, 4)
        per_level.append(boxes.reshape(-1, 4))
    return torch.cat(per_level).to(device=device, dtype=dtype)


def label_anchors(
    labeler: AnchorLabeler, anchors: torch.Tensor, boxes: torch.Tensor, classes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets for one image, matched by ``labeler``'s thresholds (:class:`~mtdsl.detection.setup.AnchorLabeler`).

    Args:
        anchors: ``(A, 4)`` from :func:`generate_anchors`.
        boxes: ``(G, 4)`` ground truth ``(x0, y0, x1, y1)`` in pixels; ``G`` may be 0.
        classes: ``(G,)`` int64 class indices in ``[0, C)``, 0-based: there is
            no background class id, background is the absence of a match.

    Returns:
        ``cls_targets`` ``(A,)`` int64: the matched box's class, :data:`BACKGROUND`
        (-1) or :data:`IGNORE` (-2);
        ``box_targets`` ``(A, 4)``: :func:`~mtdsl.detection.boxes.encode` of the
        matched box against the anchor for positives, zeros elsewhere;
        ``num_positives``: 0-dim int64, the number of matched anchors.
    """
    num_anchors = anchors.shape[0]
    if boxes.dim() != 2 or boxes.shape[1] != 4 or classes.shape != boxes.shape[:1]:
        raise ValueError(
            f"AnchorLabeler.label wants boxes (G, 4) and classes (G,), got {tuple(boxes.shape)} "
            f"and {tuple(classes.shape)}"
        )
    _check_classes(labeler, classes)
    cls_targets = torch.full((num_anchors,), BACKGROUND, dtype=torch.int64, device=anchors.device)
    box_targets = anchors.new_zeros((num_anchors, 4))
    if boxes.shape[0] == 0:
        return cls_targets, box_targets, torch.zeros((), dtype=torch.int64, device=anchors.device)

    boxes = boxes.to(anchors)
    iou = box_iou(boxes, anchors)  # (G, A)
    best_iou, best_box = iou.max(dim=0)  # (A,)
    matched = best_iou >= labeler.match_threshold
    ignored = ~matched & (best_iou >= labeler.unmatched_threshold)
    if labeler.force_match:
        box_best = iou.max(dim=1, keepdim=True).values  # (G, 1)
        claims = (iou == box_best) & (box_best > 0)  # (G, A): box g's best anchor(s)
        claimed = claims.any(dim=0)
        claimant = torch.where(claims, iou, -1.0).argmax(dim=0)
        best_box = torch.where(claimed, claimant, best_box)
        matched |= claimed
        ignored &= ~claimed

    classes = classes.to(device=anchors.device, dtype=torch.int64)
    cls_targets = torch.where(matched, classes[best_box], cls_targets)
    cls_targets[ignored] = IGNORE
    encoded = encode(boxes[best_box[matched]], anchors[matched])
    box_targets[matched] = encoded
    return cls_targets, box_targets, matched.sum()

def _check_classes(labeler: AnchorLabeler, classes: torch.Tensor) -> None:
    if classes.numel() == 0:
        return
    if classes.dtype.is_floating_point:
        raise ValueError(f"AnchorLabeler.label wants integer classes, got {classes.dtype}")
    low, high = int(classes.min()), int(classes.max())
    if low < 0:
        raise ValueError(
            f"class {low} is negative; classes are 0-based indices into the task's class list "
            f"(-1 and -2 are reserved for background and ignore)"
        )
    if labeler.num_classes is not None and high >= labeler.num_classes:
        raise ValueError(
            f"class {high} is out of range for {labeler.num_classes} classes; classes are 0-based "
            f"(a one-class dataset uses class 0 — there is no background id to skip)"
        )


def batch_targets(
    anchors: torch.Tensor,
    boxes_list: Sequence[torch.Tensor],
    classes_list: Sequence[torch.Tensor],
    labeler: AnchorLabeler,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:meth:`AnchorLabeler.label` for each image of a batch, stacked.

    Args:
        anchors: ``(A, 4)``, shared by the batch (same input size).
        boxes_list: ``N`` tensors ``(G_n, 4)``.
        classes_list: ``N`` tensors ``(G_n,)`` int64.
        labeler: the matching rule.

    Returns:
        ``cls_targets`` ``(N, A)`` int64, ``box_targets`` ``(N, A, 4)`` and
        ``num_positives`` ``(N,)`` int64.
    """
    if len(boxes_list) != len(classes_list):
        raise ValueError(f"batch_targets got {len(boxes_list)} box tensors but {len(classes_list)} class tensors")
    if not boxes_list:
        raise ValueError("batch_targets needs at least one image")
    labelled = [labeler.label(anchors, boxes, classes) for boxes, classes in zip(boxes_list, classes_list)]
    cls_targets, box_targets, num_positives = zip(*labelled)
    return torch.stack(cls_targets), torch.stack(box_targets), torch.stack(num_positives)
