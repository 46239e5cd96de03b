"""The training side of ``segment``: the classes its masks label, mean IoU, and its mask in a run's pictures.

Its targets (:class:`~mtdsl.train.data.box_mask_targets.MaskTarget`) are read by the formats that carry
masks. Importing it registers its entries in the training layer's tables (:mod:`mtdsl.train.kinds` does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtdsl.kinds.segment.kind import SEGMENT
from mtdsl.train.data.box_mask_targets import BlankMask, blank_mask_target, object_array
from mtdsl.train.data.examples import LABELLED
from mtdsl.train.data.joint import IS_UNKNOWN, UNKNOWN_TARGETS
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.metrics.metric import register_metric
from mtdsl.train.metrics.segmentation import SegmentationMetric
from mtdsl.train.run.showcase import SHOWN, Shown

register_metric(SEGMENT.name)(SegmentationMetric)


@LABELLED.register(SEGMENT.name)
def labelled(targets: np.ndarray, count: int) -> np.ndarray:
    """The classes the split's dataset labels (all of them: a reader that does not say)."""
    found = np.zeros(count, dtype=bool)
    for target in targets[:1]:
        found |= True if target.annotated is None else target.annotated
    return found


@SHOWN.register(SEGMENT.name)
def show(picture: Shown, labels: TaskLabels, output: Any, decoder: Any) -> None:
    """The picture's class mask, enlarged with it."""
    names = labels.classes if isinstance(labels.classes, tuple) else None
    mask = output[picture.index].argmax(0)
    zoom = picture.zoom
    picture.drawing.update(mask=mask.repeat_interleave(zoom, 0).repeat_interleave(zoom, 1), mask_names=names)


@UNKNOWN_TARGETS.register(SEGMENT.name)
def unknown(like: np.ndarray, count: int) -> np.ndarray:
    """A mask of the image's size whose every pixel is ignored: the loss has no pixel of it."""
    return object_array([blank_mask_target() for _ in range(count)])


@IS_UNKNOWN.register(SEGMENT.name)
def is_unknown(targets: np.ndarray) -> np.ndarray:
    return np.array([isinstance(target.mask, BlankMask) for target in targets], dtype=bool)
