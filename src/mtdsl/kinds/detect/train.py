"""The training side of ``detect``: the boxes its datasets annotate, and COCO AP.

Its targets (:class:`~mtdsl.train.data.dense.BoxTarget`) are read by the formats that carry
boxes. Importing it registers its entries in the training layer's tables (:mod:`mtdsl.train.kinds` does).
"""

from __future__ import annotations

import numpy as np

from mtdsl.kinds.detect.kind import DETECT
from mtdsl.train.data.examples import LABELLED
from mtdsl.train.metrics.dense import DetectionMetric
from mtdsl.train.metrics.metric import register_metric

register_metric(DETECT.name)(DetectionMetric)


@LABELLED.register(DETECT.name)
def labelled(targets: np.ndarray, count: int) -> np.ndarray:
    """The classes the split's dataset annotates (every target of a split says the same)."""
    found = np.zeros(count, dtype=bool)
    for target in targets[:1]:
        found |= target.annotated
    return found
