"""The training side of ``keypoints``: the points its datasets label, OKS AP, and its points in a run's pictures.

Its targets (:class:`~mtdsl.train.data.point_targets.PointTarget`) are read by the formats that carry
points. Importing it registers its entries in the training layer's tables (:mod:`mtdsl.train.kinds` does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtdsl.kinds.keypoints.kind import KEYPOINTS
from mtdsl.kinds.keypoints.metric import KeypointsMetric
from mtdsl.nn.heads.heatmap import decode_heatmaps
from mtdsl.train.data.examples import LABELLED
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.metrics.metric import register_metric
from mtdsl.train.run.showcase import DRAWN_SCORE, SHOWN, Shown

register_metric(KEYPOINTS.name)(KeypointsMetric)


@LABELLED.register(KEYPOINTS.name)
def labelled(targets: np.ndarray, count: int) -> np.ndarray:
    """The points the split's dataset has (every target of a split says the same)."""
    found = np.zeros(count, dtype=bool)
    for target in targets[:1]:
        found |= target.annotated
    return found


@SHOWN.register(KEYPOINTS.name)
def show(picture: Shown, labels: TaskLabels, output: Any, decoder: Any) -> None:
    """The picture's confident points (over :data:`DRAWN_SCORE`), each in its point's colour."""
    n, zoom = picture.index, picture.zoom
    points, scores = decode_heatmaps(output[n : n + 1], picture.image_size)
    sure = (scores[0] >= DRAWN_SCORE).cpu().numpy()
    spots = points[0].cpu().numpy() * zoom
    picture.drawing.update(points=np.where(sure[:, None], spots, np.nan))
