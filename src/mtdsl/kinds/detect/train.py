"""The training side of ``detect``: the boxes its datasets annotate, COCO AP, and its boxes in a run's pictures.

Its targets (:class:`~mtdsl.train.data.box_mask_targets.BoxTarget`) are read by the formats that carry
boxes. Importing it registers its entries in the training layer's tables (:mod:`mtdsl.train.kinds` does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtdsl.kinds.detect.kind import DETECT
from mtdsl.train.data.box_mask_targets import BoxTarget, object_array
from mtdsl.train.data.examples import LABELLED
from mtdsl.train.data.joint import IS_UNKNOWN, UNKNOWN_TARGETS
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.metrics.detection import DetectionMetric
from mtdsl.train.metrics.metric import register_metric
from mtdsl.train.run.showcase import DRAWN_SCORE, SHOWN, Shown

register_metric(DETECT.name)(DetectionMetric)


@LABELLED.register(DETECT.name)
def labelled(targets: np.ndarray, count: int) -> np.ndarray:
    """The classes the split's dataset annotates (every target of a split says the same)."""
    found = np.zeros(count, dtype=bool)
    for target in targets[:1]:
        found |= target.annotated
    return found


@SHOWN.register(DETECT.name)
def show(picture: Shown, labels: TaskLabels, output: Any, decoder: Any) -> None:
    """The confident boxes of the picture's image (over :data:`DRAWN_SCORE`), after NMS."""
    n, zoom = picture.index, picture.zoom
    names = labels.classes if isinstance(labels.classes, tuple) else None
    found = decoder.detections(tuple(part[n : n + 1] for part in output))[0]
    sure = found["scores"] >= DRAWN_SCORE
    picture.drawing.update(boxes=found["boxes"][sure] * zoom, scores=found["scores"][sure],
                           classes=found["classes"][sure], class_names=names)


@UNKNOWN_TARGETS.register(DETECT.name)
def unknown(like: np.ndarray, count: int) -> np.ndarray:
    """No boxes, and no class annotated: the focal loss masks every class out, and no anchor is positive."""
    classes = len(like[0].annotated)
    return object_array([BoxTarget(np.zeros((0, 4), dtype=np.float32), np.zeros(0, dtype=np.int64),
                                   np.zeros(classes, dtype=bool)) for _ in range(count)])


@IS_UNKNOWN.register(DETECT.name)
def is_unknown(targets: np.ndarray) -> np.ndarray:
    return np.array([not target.annotated.any() for target in targets], dtype=bool)
