"""The training side of ``segment``: the classes its masks label, and mean IoU.

Its targets (:class:`~mtdsl.train.data.dense.MaskTarget`) are read by the formats that carry
masks. Importing it registers its entries in the training layer's tables (:mod:`mtdsl.train.kinds` does).
"""

from __future__ import annotations

import numpy as np

from mtdsl.kinds.segment.kind import SEGMENT
from mtdsl.train.data.examples import LABELLED
from mtdsl.train.metrics.dense import SegmentationMetric
from mtdsl.train.metrics.metric import register_metric

register_metric(SEGMENT.name)(SegmentationMetric)


@LABELLED.register(SEGMENT.name)
def labelled(targets: np.ndarray, count: int) -> np.ndarray:
    """The classes the split's dataset labels (all of them: a reader that does not say)."""
    found = np.zeros(count, dtype=bool)
    for target in targets[:1]:
        found |= True if target.annotated is None else target.annotated
    return found
