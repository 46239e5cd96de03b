"""``keypoints(corners)``: named points on the one object of each image, through a heatmap head on a neck.

Its ``classes`` are the names of its points, in output order (``classes = [top_left, top_right,
bottom_right, bottom_left]``), matched by name to a COCO category's ``keypoints`` list or to the
synthetic shapes' corners. The head draws one heatmap per point; each point is the peak of its own
heatmap, so an image holds one instance (the SimpleBaseline design; a crowd needs a detector first).
"""

from __future__ import annotations

from mtdsl.kinds.registry import TASK_KINDS, TaskKind

KEYPOINTS = TASK_KINDS.register(TaskKind(
    "keypoints",
    "named points on the one object of an image",
    heads=("heatmap",),
    losses=("heatmap_focal",),
    targets="points",
))
