"""The targets of tasks that learn named points: one instance's points per image, and every instance for scoring.

A reader (``coco``, ``synthetic``) makes a :class:`PointTarget` per image; the
letterbox moves its points with the pixels (:class:`~mtdsl.train.data.letterbox.Letterbox`),
and a mirroring op swaps the points whose names mirror each other
(:func:`flip_order`: ``left_eye`` and ``right_eye`` under a horizontal flip,
``top_left`` and ``bottom_left`` under a vertical one), so a name keeps meaning
the same side of the object. Points are continuous pixel coordinates, as boxes are:
a horizontal flip maps ``x`` to ``width - x``.

>>> flip_order(("nose", "left_eye", "right_eye"), horizontal=True, vertical=False).tolist()
[0, 2, 1]
>>> target = synthetic_point_targets(SyntheticDataset(count=4, size=32), TaskLabels("corners", "keypoints", 4))[0]
>>> target.points.shape, target.labelled.tolist()
((4, 2), [True, True, True, True])
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from mtdsl.errors import DataError
from mtdsl.spec.data import SyntheticDataset
from mtdsl.train.data.box_mask_targets import check_dense_classes, object_array
from mtdsl.train.data.sources import describe
from mtdsl.train.data.synthetic import synthetic_sample
from mtdsl.train.data.tasks import TaskLabels

__all__ = [
    "SYNTHETIC_POINTS",
    "PointTarget",
    "PointTruth",
    "flip_order",
    "point_lookup",
    "synthetic_point_targets",
    "unletterbox_points",
]

#: The points of a synthetic shape: the corners of its box, clockwise from the top left.
SYNTHETIC_POINTS = ("top_left", "top_right", "bottom_right", "bottom_left")


@dataclass(frozen=True, eq=False)
class PointTruth:
    """One image's instances as COCO keypoint evaluation reads them: all of them, in the file's pixels.

    Attributes:
        image_id: the image's ``id`` in its file (``None`` for sources without one).
        keypoints: ``(G, K, 3)`` float64 ``(x, y, v)`` in the task's point order; ``v`` 0 where the
            instance does not label the point (or its dataset does not have it).
        areas: ``(G,)`` the instances' areas (OKS divides distances by their square roots).
        boxes: ``(G, 4)`` ``(x0, y0, x1, y1)``, the instances' boxes.
        crowd: ``(G,)`` bool, ``iscrowd``.
    """

    image_id: Hashable
    keypoints: np.ndarray
    areas: np.ndarray
    boxes: np.ndarray
    crowd: np.ndarray


@dataclass(frozen=True, eq=False)
class PointTarget:
    """One example's points for one task: those of the one instance it learns from.

    Attributes:
        points: ``(K, 2)`` float32 ``(x, y)`` in the image file's pixels, in the task's point order.
        labelled: ``(K,)`` bool, which points the instance labels (COCO's ``v > 0``); the others get no loss.
        names: the task's point names (what :func:`flip_order` mirrors).
        annotated: ``(K,)`` bool, the points the example's dataset has at all (a joined task's datasets
            may each name some).
        truth: every instance of the image, what evaluation scores against.
    """

    points: np.ndarray
    labelled: np.ndarray
    names: tuple[str, ...]
    annotated: np.ndarray
    truth: PointTruth

    def original(self, scale: tuple[float, float], size: tuple[int, int], flipped: bool = False) -> dict[str, Any]:
        """What evaluation needs to score this image's points in its own pixels (as ``BoxTarget.original``):
        ``{"instances": (G, K, 3), "areas", "boxes", "crowd", "image_id", "scale", "size", "flipped"}``."""
        truth = self.truth
        return {
            "instances": truth.keypoints, "areas": truth.areas, "boxes": truth.boxes, "crowd": truth.crowd,
            "image_id": truth.image_id, "scale": tuple(map(float, scale)), "size": tuple(map(int, size)),
            "flipped": bool(flipped),
        }


_SIDES = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}


def _mirrored(name: str, sides: tuple[str, str]) -> str:
    """``name`` with each word ``sides[0]`` spelled ``sides[1]`` and back (words split by ``_``, ``-`` or case)."""
    swap = {sides[0]: sides[1], sides[1]: sides[0]}
    # whole words only: "bright_spot" has no "right" side
    return re.sub(rf"(?<![a-z])({'|'.join(swap)})(?![a-z])", lambda match: swap[match.group(0)], name)


def flip_order(names: Sequence[str], horizontal: bool, vertical: bool) -> np.ndarray:
    """The point order after a mirror: index ``i`` takes the point that was named as ``names[i]``'s mirror.

    A horizontal flip swaps ``left`` and ``right`` in the names, a vertical one ``top`` and
    ``bottom``; a point whose mirrored name is not a point keeps its place (``nose``).
    """
    order = np.arange(len(names))
    position = {name: index for index, name in enumerate(names)}
    for flipped, sides in ((horizontal, ("left", "right")), (vertical, ("top", "bottom"))):
        if not flipped:
            continue
        order = np.array([order[position.get(_mirrored(names[i], sides), i)] for i in range(len(names))])
    return order


def unletterbox_points(points: np.ndarray, scale: tuple[float, float], flipped: bool = False,
                       width: int = 0) -> np.ndarray:
    """Points found on a letterboxed image, in the pixels of the image itself (the letterbox pads bottom/right).

    >>> unletterbox_points(np.array([[10.0, 4.0]]), (0.5, 0.25)).tolist()
    [[20.0, 16.0]]
    """
    sx, sy = scale
    moved = np.asarray(points, dtype=np.float64).reshape(-1, 2) / np.array([sx, sy])
    if flipped:
        moved[:, 0] = width - moved[:, 0]
    return moved


def point_lookup(own: Sequence[str], task: TaskLabels, where: str) -> np.ndarray:
    """``(K,)`` int64: for each of ``task``'s points, its index in the dataset's ``own`` points (-1: none).

    A task of one dataset takes the dataset's points, in its order; a task that joins datasets
    names its points, and each dataset labels those it has.

    Raises:
        DataError: the task's points are not the dataset's (one dataset), or the dataset has none of them.
    """
    if not task.partial:
        names = check_dense_classes(task, tuple(own), where)
        return np.arange(len(names), dtype=np.int64)
    names = tuple(task.classes) if isinstance(task.classes, tuple) else ()
    lookup = np.array([list(own).index(name) if name in own else -1 for name in names], dtype=np.int64)
    if not (lookup >= 0).any():
        raise DataError(
            f"{where} has none of the points of task '{task.task}': {', '.join(names)}",
            expected=f"a point among its own: {', '.join(own)}",
            hint="check the spelling of the task's points (its classes), or take the dataset out of the task",
        )
    return lookup


def task_names(task: TaskLabels, own: Sequence[str]) -> tuple[str, ...]:
    """The task's point names: its own list, or the dataset's when it counted them (``classes = 4``)."""
    return tuple(task.classes) if isinstance(task.classes, tuple) else tuple(own)


@lru_cache(maxsize=8)
def _synthetic_corners(count: int, size: int, seed: int) -> tuple[tuple[np.ndarray, float], ...]:
    """Each synthetic shape's box corners ``(4, 2)`` (:data:`SYNTHETIC_POINTS` order) and its area in pixels."""
    found = []
    for index in range(count):
        sample = synthetic_sample(index, size, seed)
        x0, y0, x1, y1 = sample.box
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)
        found.append((corners, float(np.count_nonzero(sample.mask))))
    return tuple(found)


def synthetic_point_targets(config: SyntheticDataset, task: TaskLabels) -> np.ndarray:
    """Every synthetic example's :class:`PointTarget`: its shape's box corners, all labelled.

    The instance's area (OKS's scale) is the shape's pixel count, as a COCO file's is its segmentation's.

    Raises:
        DataError: the task's points are not :data:`SYNTHETIC_POINTS` (one dataset), or none of them (joined).
    """
    where = describe(config)
    lookup = point_lookup(SYNTHETIC_POINTS, task, where)
    names = task_names(task, SYNTHETIC_POINTS)
    has = lookup >= 0
    targets = []
    for corners, area in _synthetic_corners(config.count, config.size, config.seed):
        points = np.where(has[:, None], corners[np.maximum(lookup, 0)], 0).astype(np.float32)
        x0, y0 = corners[0]
        x1, y1 = corners[2]
        keypoints = np.concatenate([points, has[:, None]], axis=1).astype(np.float64) * [1, 1, 2]
        truth = PointTruth(None, keypoints[None], np.array([area]), np.array([[x0, y0, x1, y1]], dtype=np.float64),
                           np.zeros(1, dtype=bool))
        targets.append(PointTarget(points, has.copy(), names, has.copy(), truth))
    return object_array(targets)
