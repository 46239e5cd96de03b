"""Anchor coverage: how many ground-truth boxes some anchor matches, said before training.

A box that no anchor overlaps at ``match_iou`` is learned only through the
labeller's forced match of its single best anchor, whose box regression must
then stretch far: the detector learns such boxes slowly or not at all. YOLO's
autoanchor checks this for one model; mtdsl checks it for every detect task at
the spec's input size, and when the share is low it tries the other
``anchor_scale`` values and names the one that covers most.

>>> config = AnchorConfig(min_level=3, max_level=5, anchor_scale=4.0)
>>> boxes = np.array([[0, 0, 32, 32], [40, 40, 48, 48]], dtype=np.float32)   # 32 px and 8 px squares
>>> found = anchor_coverage(config, 0.5, (64, 64), [boxes])
>>> found.matched, found.boxes
(1, 2)
>>> best_anchor_scale(config, 0.5, (64, 64), [boxes])[0]
1.0
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import box_iou

from mtdsl.detection.anchors import AnchorConfig, generate_anchors

#: Below this share of matched boxes, training warns and names a better ``anchor_scale``.
LOW_COVERAGE = 0.9
#: The ``anchor_scale`` values tried when the spec's covers too few boxes.
CANDIDATE_SCALES = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)


@dataclass(frozen=True)
class Coverage:
    """Attributes:
    boxes: ground-truth boxes counted (after the letterbox, in input pixels).
    matched: how many of them some anchor overlaps at ``match_iou`` or more.
    median_iou: the median over boxes of their best anchor's IoU.
    smallest: the side (``sqrt(w·h)``) in input pixels of the 5th-percentile box.
    """

    boxes: int
    matched: int
    median_iou: float
    smallest: float

    @property
    def share(self) -> float:
        """The matched share of boxes (1.0 when there are none)."""
        return self.matched / self.boxes if self.boxes else 1.0


def best_iou_per_box(anchors: torch.Tensor, boxes: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """``(G,)``: each box's highest IoU with any anchor, computed ``chunk`` boxes at a time."""
    best = [box_iou(boxes[i : i + chunk], anchors).max(dim=1).values for i in range(0, len(boxes), chunk)]
    return torch.cat(best) if best else torch.zeros(0)


def anchor_coverage(
    config: AnchorConfig, match_iou: float, image_size: tuple[int, int], boxes: Sequence[np.ndarray]
) -> Coverage:
    """The share of ``boxes`` that some anchor of ``config`` overlaps at ``match_iou`` or more.

    Args:
        config: the task's anchors.
        match_iou: the labeller's ``match_threshold``.
        image_size: ``(height, width)`` of the network input.
        boxes: per image ``(G, 4)`` ``(x0, y0, x1, y1)`` in input pixels (letterboxed).
    """
    stacked = torch.from_numpy(np.concatenate([np.zeros((0, 4), np.float32)] +
                                              [np.asarray(b, dtype=np.float32).reshape(-1, 4) for b in boxes]))
    if len(stacked) == 0:
        return Coverage(0, 0, float("nan"), float("nan"))
    best = best_iou_per_box(generate_anchors(config, image_size), stacked)
    sides = ((stacked[:, 2] - stacked[:, 0]).clamp(min=0) * (stacked[:, 3] - stacked[:, 1]).clamp(min=0)).sqrt()
    return Coverage(
        boxes=len(stacked),
        matched=int((best >= match_iou).sum()),
        median_iou=float(best.median()),
        smallest=float(torch.quantile(sides, 0.05)),
    )


def best_anchor_scale(
    config: AnchorConfig, match_iou: float, image_size: tuple[int, int], boxes: Sequence[np.ndarray]
) -> tuple[float, Coverage]:
    """The ``anchor_scale`` of :data:`CANDIDATE_SCALES` (or the spec's own) that covers most boxes.

    Ties go to the spec's own value, then to the smaller scale.
    """
    tried = sorted({config.anchor_scale, *CANDIDATE_SCALES})
    found = {scale: anchor_coverage(dataclasses.replace(config, anchor_scale=scale), match_iou, image_size, boxes)
             for scale in tried}
    best = max(tried, key=lambda s: (found[s].matched, s == config.anchor_scale, -s))
    return best, found[best]
