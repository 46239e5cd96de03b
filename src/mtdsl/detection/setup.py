"""What a detect task's anchors, matching and post-processing are: plain, torch-free settings.

:class:`AnchorConfig` (where anchors sit), :class:`AnchorLabeler` (how boxes
claim them) and :class:`DetectionSetup` (both, with the input size and NMS) are
values: ``mtdsl compile`` writes them into ``train.py`` as literals without
importing torch. Their work is done by :mod:`mtdsl.detection.anchors` and
:mod:`mtdsl.detection.boxes`, which their methods call.

>>> setup = DetectionSetup(AnchorConfig(min_level=3, max_level=4), AnchorLabeler(), (32, 32))
>>> setup.anchor_boxes().shape  # (4·4 + 2·2) cells × 9 anchors
torch.Size([180, 4])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: A detection head's raw outputs: ``(class_logits, box_deltas)``, each flattened over levels and anchors.
DetectionOutputs = tuple["torch.Tensor", "torch.Tensor"]

__all__ = ["AnchorConfig", "AnchorLabeler", "DetectionOutputs", "DetectionSetup"]


@dataclass(frozen=True)
class AnchorConfig:
    """Where anchors sit and how big they are; effdet's defaults.

    At level ``l`` (stride ``2^l``) each grid cell carries
    ``num_scales · len(aspect_ratios)`` anchors. Anchor ``(scale s, ratio (rx, ry))``
    is ``anchor_scale · 2^l · 2^(s / num_scales) · rx`` pixels wide and
    ``… · ry`` pixels tall, so with the defaults a level-3 anchor of scale 0 and
    ratio 1:1 is ``4 · 8 = 32`` pixels square and the scales step by ``2^(1/3)``.

    Attributes:
        min_level: finest pyramid level (stride ``2^min_level``).
        max_level: coarsest pyramid level.
        num_scales: octave sub-scales per level.
        aspect_ratios: ``(rx, ry)`` width and height multipliers. effdet's
            ``(1.4, 0.7)`` and ``(0.7, 1.4)`` are the 2:1 and 1:2 ratios in a form
            that keeps the area (nearly, ``1.4 · 0.7 = 0.98``) equal to the 1:1 anchor's.
        anchor_scale: anchor side over stride for scale 0 and ratio 1:1.
    """

    min_level: int = 3
    max_level: int = 7
    num_scales: int = 3
    aspect_ratios: tuple[tuple[float, float], ...] = ((1.0, 1.0), (1.4, 0.7), (0.7, 1.4))
    anchor_scale: float = 4.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_level <= self.max_level:
            raise ValueError(
                f"AnchorConfig needs 0 <= min_level <= max_level, got min_level={self.min_level}, "
                f"max_level={self.max_level}; effdet uses 3 and 7"
            )
        if self.num_scales < 1:
            raise ValueError(f"AnchorConfig.num_scales must be at least 1, got {self.num_scales}; effdet uses 3")
        if not self.aspect_ratios or any(len(r) != 2 or min(r) <= 0 for r in self.aspect_ratios):
            raise ValueError(
                f"AnchorConfig.aspect_ratios must be a non-empty tuple of positive (rx, ry) pairs, "
                f"got {self.aspect_ratios!r}; effdet uses ((1.0, 1.0), (1.4, 0.7), (0.7, 1.4))"
            )
        if self.anchor_scale <= 0:
            raise ValueError(f"AnchorConfig.anchor_scale must be positive, got {self.anchor_scale}; effdet uses 4.0")

    @property
    def levels(self) -> range:
        """The pyramid levels, finest first: ``min_level..max_level`` inclusive."""
        return range(self.min_level, self.max_level + 1)


@dataclass(frozen=True)
class AnchorLabeler:
    """Assign each anchor a class target and a box target by IoU, as effdet's ArgMaxMatcher.

    With ``iou`` the ``(G, A)`` IoU between ground-truth boxes and anchors, and
    ``best = max_g iou[g, a]`` for anchor ``a``:

    * ``best >= match_threshold``: positive, matched to ``argmax_g iou[g, a]``;
    * ``unmatched_threshold <= best < match_threshold``: ignored (:data:`IGNORE`);
    * ``best < unmatched_threshold``: background (:data:`BACKGROUND`).

    With ``force_match`` (effdet's ``force_match_for_each_row``, torchvision's
    ``allow_low_quality_matches``) every box with any overlap also claims the
    anchor(s) it overlaps most, ties included, whatever their IoU; such an
    anchor is matched to that box even if it cleared the threshold for another
    (an anchor claimed by several boxes goes to the one it overlaps most), so
    small or oddly shaped boxes are never left without a positive. Boxes of
    zero area overlap nothing and are never matched.

    Attributes:
        match_threshold: IoU at or above which an anchor is positive.
        unmatched_threshold: IoU below which an anchor is background.
        force_match: give every box its best anchor(s).
        num_classes: when set, :meth:`label` rejects classes outside ``[0, num_classes)``.
    """

    match_threshold: float = 0.5
    unmatched_threshold: float = 0.4
    force_match: bool = True
    num_classes: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.unmatched_threshold <= self.match_threshold <= 1.0:
            raise ValueError(
                f"AnchorLabeler needs 0 <= unmatched_threshold <= match_threshold <= 1, got "
                f"{self.unmatched_threshold} and {self.match_threshold}; effdet uses 0.4 and 0.5"
            )

    def label(
        self, anchors: torch.Tensor, boxes: torch.Tensor, classes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Targets for one image: :func:`mtdsl.detection.anchors.label_anchors` with these thresholds."""
        from mtdsl.detection.anchors import label_anchors

        return label_anchors(self, anchors, boxes, classes)


@dataclass(frozen=True)
class DetectionSetup:
    """Anchors, matching and post-processing of one detect task.

    Attributes:
        anchors: where anchors sit (levels from the neck, sizes from the head).
        labeler: IoU matching of boxes to anchors.
        image_size: ``(height, width)`` of the network input.
        score_threshold: detections scoring at or below it are dropped.
        nms_iou: class-wise NMS overlap.
        max_detections: detections kept per image.
    """

    anchors: AnchorConfig
    labeler: AnchorLabeler
    image_size: tuple[int, int]
    score_threshold: float = 0.05
    nms_iou: float = 0.5
    max_detections: int = 100
    _cache: dict[Any, torch.Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)

    def anchor_boxes(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """``(A, 4)`` anchors ``(x0, y0, x1, y1)`` in head-output order, built once per device."""
        from mtdsl.detection.anchors import generate_anchors

        key = str(device)
        if key not in self._cache:
            self._cache[key] = generate_anchors(self.anchors, self.image_size, device=device)
        return self._cache[key]

    def detections(self, outputs: DetectionOutputs) -> list[dict[str, torch.Tensor]]:
        """Per image ``{"boxes" (D, 4), "scores" (D,), "classes" (D,)}`` in network-input pixels."""
        from mtdsl.detection.boxes import postprocess

        class_logits, box_deltas = outputs
        return postprocess(
            class_logits.float(),
            box_deltas.float(),
            self.anchor_boxes(class_logits.device),
            image_size=self.image_size,
            score_threshold=self.score_threshold,
            iou_threshold=self.nms_iou,
            max_detections=self.max_detections,
        )
