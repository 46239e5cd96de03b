"""``detect(coco)``: bounding boxes with classes, through an EfficientDet head on a neck."""

from __future__ import annotations

from mtdsl.kinds.registry import TASK_KINDS, TaskKind

DETECT = TASK_KINDS.register(TaskKind(
    "detect",
    "bounding boxes with classes",
    heads=("efficientdet",),
    losses=("detection",),
    targets="boxes",
    crops=True,
))
