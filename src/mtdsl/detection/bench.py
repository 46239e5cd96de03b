"""Wrappers around a detection head's raw outputs, as effdet's ``bench.py``: loss and prediction.

The model returns raw ``(class_logits, box_deltas)`` per detect task (a dict keyed
by task, like every head). :class:`DetectionSetup` holds what turns those into
boxes and back: the anchors for the input size, the IoU labeler and the NMS
settings. :class:`DetectionCriterion` labels the anchors of a batch's boxes and
applies :class:`~mtdsl.detection.loss.DetectionLoss`, masking the classes each
image's dataset does not annotate (thesis §5.3).

>>> setup = DetectionSetup(AnchorConfig(min_level=3, max_level=4), AnchorLabeler(), (32, 32))
>>> setup.anchor_boxes().shape  # (4·4 + 2·2) cells × 9 anchors
torch.Size([180, 4])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mtdsl.detection.anchors import AnchorConfig, AnchorLabeler, batch_targets, generate_anchors
from mtdsl.detection.boxes import postprocess
from mtdsl.detection.loss import DetectionLoss

DetectionOutputs = tuple[torch.Tensor, torch.Tensor]


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
        key = str(device)
        if key not in self._cache:
            self._cache[key] = generate_anchors(self.anchors, self.image_size, device=device)
        return self._cache[key]

    def detections(self, outputs: DetectionOutputs) -> list[dict[str, torch.Tensor]]:
        """Per image ``{"boxes" (D, 4), "scores" (D,), "classes" (D,)}`` in network-input pixels."""
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


class DetectionCriterion(nn.Module):
    """The training loss of a detect task: label anchors, then focal + box loss.

    ``targets`` is a batch's ``{"boxes": N × (G_n, 4), "classes": N × (G_n,),
    "annotated": (N, C) bool}``; a class an image's dataset does not annotate
    gets no class loss on that image (its anchors are neither taught as that
    class nor as background).

    Returns the 0-dim total (class loss + weighted box loss).
    """

    def __init__(self, loss: DetectionLoss, setup: DetectionSetup) -> None:
        super().__init__()
        self.loss = loss
        self.setup = setup

    def parts(self, outputs: DetectionOutputs, targets: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """``{"loss", "class_loss", "box_loss"}`` of one batch."""
        class_logits, box_deltas = outputs
        anchors = self.setup.anchor_boxes(class_logits.device)
        boxes: Sequence[torch.Tensor] = [b.to(anchors.device, torch.float32) for b in targets["boxes"]]
        classes: Sequence[torch.Tensor] = [c.to(anchors.device) for c in targets["classes"]]
        cls_targets, box_targets, num_positives = batch_targets(anchors, boxes, classes, self.setup.labeler)
        annotated = targets.get("annotated")
        return self.loss(
            class_logits.float(), box_deltas.float(), cls_targets, box_targets, num_positives,
            class_mask=None if annotated is None else annotated.to(class_logits.device),
        )

    def forward(self, outputs: DetectionOutputs, targets: Mapping[str, Any]) -> torch.Tensor:
        return self.parts(outputs, targets)["loss"]
