"""The box coder and post-processing: from head outputs to per-image detections.

Boxes are ``(x0, y0, x1, y1)`` in pixels everywhere in mtdsl (torchvision's
convention, so ``torchvision.ops`` applies directly). The coder is the
Faster R-CNN one that effdet uses, with weights ``(1, 1, 1, 1)``, written in
x-first order to match the boxes::

    dx = (cx - cx_a) / w_a        dy = (cy - cy_a) / h_a
    dw = log(w / w_a)             dh = log(h / h_a)

where ``(cx, cy, w, h)`` are a box's centre and size and ``_a`` marks the
anchor's. A detection head's four box outputs per anchor are therefore read as
``(dx, dy, dw, dh)``. (effdet's TensorFlow-born heads emit ``(dy, dx, dh, dw)``
on ``(y0, x0, y1, x1)`` boxes; a pretrained effdet box head would need its
channels permuted, which no part of mtdsl does.)

>>> anchors = torch.tensor([[0.0, 0.0, 32.0, 32.0]])
>>> boxes = torch.tensor([[16.0, 0.0, 48.0, 64.0]])
>>> encode(boxes, anchors)
tensor([[0.5000, 0.5000, 0.0000, 0.6931]])
>>> decode(encode(boxes, anchors), anchors)
tensor([[16.,  0., 48., 64.]])
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import batched_nms, clip_boxes_to_image

#: Largest ``dw``/``dh`` that :func:`decode` exponentiates: a box at most 62.5× its anchor
#: (torchvision's ``bbox_xform_clip``), so an untrained head cannot overflow ``exp``.
MAX_LOG_SCALE = math.log(1000.0 / 16)

#: Smallest width or height :func:`encode` takes the log of; degenerate boxes stay finite.
_MIN_SIZE = 1e-6

Weights = tuple[float, float, float, float]


def _centre_size(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    x0, y0, x1, y1 = boxes.unbind(-1)
    return (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0


def encode(boxes: torch.Tensor, anchors: torch.Tensor, *, weights: Weights = (1.0, 1.0, 1.0, 1.0)) -> torch.Tensor:
    """Regression targets that move each anchor onto its box.

    ``deltas = (wx·dx, wy·dy, ww·dw, wh·dh)`` with ``dx, dy, dw, dh`` as in the
    module docstring and ``(wx, wy, ww, wh) = weights``.

    Args:
        boxes: ``(..., 4)`` ground-truth boxes ``(x0, y0, x1, y1)``; widths and
            heights below ``1e-6`` are raised to it so the log stays finite.
        anchors: ``(..., 4)`` anchors, broadcastable against ``boxes``, with
            positive widths and heights.
        weights: per-coordinate scale factors (effdet and mtdsl use ones).

    Returns:
        ``(..., 4)`` deltas ``(dx, dy, dw, dh)``, the exact inverse of :func:`decode`
        while ``|dw|, |dh| <= MAX_LOG_SCALE``.
    """
    cx, cy, w, h = _centre_size(boxes)
    cx_a, cy_a, w_a, h_a = _centre_size(anchors)
    wx, wy, ww, wh = weights
    dx = wx * (cx - cx_a) / w_a
    dy = wy * (cy - cy_a) / h_a
    dw = ww * torch.log(w.clamp_min(_MIN_SIZE) / w_a)
    dh = wh * torch.log(h.clamp_min(_MIN_SIZE) / h_a)
    return torch.stack((dx, dy, dw, dh), dim=-1)


def decode(deltas: torch.Tensor, anchors: torch.Tensor, *, weights: Weights = (1.0, 1.0, 1.0, 1.0)) -> torch.Tensor:
    """Boxes that the deltas describe relative to their anchors (inverse of :func:`encode`).

    ``cx = dx/wx · w_a + cx_a``, ``w = exp(min(dw/ww, MAX_LOG_SCALE)) · w_a`` and
    likewise for ``y``/``h``; the box is then ``(cx ∓ w/2, cy ∓ h/2)``.

    Args:
        deltas: ``(..., 4)`` as ``(dx, dy, dw, dh)``.
        anchors: ``(..., 4)`` anchors ``(x0, y0, x1, y1)``, broadcastable against ``deltas``.
        weights: the scale factors :func:`encode` used.

    Returns:
        ``(..., 4)`` boxes ``(x0, y0, x1, y1)``.
    """
    cx_a, cy_a, w_a, h_a = _centre_size(anchors)
    wx, wy, ww, wh = weights
    dx, dy, dw, dh = deltas.unbind(-1)
    cx = dx / wx * w_a + cx_a
    cy = dy / wy * h_a + cy_a
    # Clamp before exp: only the upper side can overflow, and tiny boxes are harmless.
    w = torch.exp((dw / ww).clamp(max=MAX_LOG_SCALE)) * w_a
    h = torch.exp((dh / wh).clamp(max=MAX_LOG_SCALE)) * h_a
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


#: Most (anchor, class) pairs per image that reach NMS (:func:`postprocess`).
PRE_NMS_TOP_K = 1000


def postprocess(
    class_logits: torch.Tensor,
    box_deltas: torch.Tensor,
    anchors: torch.Tensor,
    *,
    image_size: tuple[int, int],
    score_threshold: float = 0.05,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
    pre_nms_top_k: int = PRE_NMS_TOP_K,
) -> list[dict[str, torch.Tensor]]:
    """Per-image detections from a batch of flattened head outputs.

    For each image: ``scores = sigmoid(class_logits)`` over all ``A·C``
    (anchor, class) pairs; keep the ``pre_nms_top_k`` best pairs whose score
    exceeds ``score_threshold``; decode their anchors' deltas; clip to the
    image; run class-wise NMS (``torchvision.ops.batched_nms``, a box only
    suppresses boxes of its own class); keep the ``max_detections`` best.
    One anchor can yield several detections, one per class that clears the
    threshold, as in effdet and torchvision's RetinaNet.

    Args:
        class_logits: ``(N, A, C)`` raw class scores, anchors in
            :func:`~mtdsl.detection.anchors.generate_anchors` order.
        box_deltas: ``(N, A, 4)`` as ``(dx, dy, dw, dh)``.
        anchors: ``(A, 4)`` anchors ``(x0, y0, x1, y1)``.
        image_size: ``(height, width)`` of the network input; boxes are clipped to it.
        score_threshold: pairs scoring at or below this are dropped before NMS.
        iou_threshold: NMS drops a box overlapping a better one of its class by more.
        max_detections: most detections kept per image.
        pre_nms_top_k: most (anchor, class) pairs per image that reach NMS.

    Returns:
        ``N`` dicts, each with ``boxes`` ``(D, 4)`` float, ``scores`` ``(D,)``
        float (best first) and ``classes`` ``(D,)`` int64 in ``[0, C)``, with
        ``D <= max_detections``; ``D`` may be 0.
    """
    if class_logits.dim() != 3 or box_deltas.shape != (*class_logits.shape[:2], 4):
        raise ValueError(
            f"postprocess wants class_logits (N, A, C) and box_deltas (N, A, 4); got "
            f"{tuple(class_logits.shape)} and {tuple(box_deltas.shape)}"
        )
    if anchors.shape != (class_logits.shape[1], 4):
        raise ValueError(
            f"postprocess got {anchors.shape[0]} anchors for {class_logits.shape[1]} anchor outputs; "
            "generate the anchors for the same image size and AnchorConfig as the head"
        )
    batch, _, num_classes = class_logits.shape
    scores = torch.sigmoid(class_logits.float()).flatten(1)  # (N, A·C), pair index = anchor·C + class
    top_k = min(pre_nms_top_k, scores.shape[1])
    top_scores, top_pairs = scores.topk(top_k, dim=1)  # (N, k), sorted best first
    deltas = box_deltas.float()
    anchors = anchors.to(deltas)

    detections = []
    for n in range(batch):
        keep = top_scores[n] > score_threshold
        pair_scores, pairs = top_scores[n][keep], top_pairs[n][keep]
        anchor_index, classes = pairs // num_classes, pairs % num_classes
        boxes = clip_boxes_to_image(decode(deltas[n, anchor_index], anchors[anchor_index]), image_size)
        kept = batched_nms(boxes, pair_scores, classes, iou_threshold)[:max_detections]
        detections.append({"boxes": boxes[kept], "scores": pair_scores[kept], "classes": classes[kept]})
    return detections
