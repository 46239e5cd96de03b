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
from typing import Any

import torch
from torch import nn

from mtdsl.detection.anchors import batch_targets
from mtdsl.detection.loss import DetectionLoss
from mtdsl.detection.setup import AnchorConfig, AnchorLabeler, DetectionOutputs, DetectionSetup

__all__ = ["AnchorConfig", "AnchorLabeler", "DetectionCriterion", "DetectionOutputs", "DetectionSetup"]

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
