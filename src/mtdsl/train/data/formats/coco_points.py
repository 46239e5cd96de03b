"""A COCO keypoints file's points, for tasks of named points: one instance learnt per image, all of them scored.

A category of a COCO keypoints file (``person_keypoints_*.json``) names its points
(``"keypoints": ["nose", "left_eye", …]``) and each of its annotations places them,
``"keypoints": [x1, y1, v1, x2, y2, v2, …]`` with ``v`` 0 (not labelled), 1
(labelled, hidden) or 2 (visible). The task's ``classes`` are the point names; the
category is the one that names them. The heatmap head finds one instance per image,
so an image teaches the instance that labels the most points (the largest, between
equals); evaluation scores against every instance of the image, as ``COCOeval`` does.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from mtdsl.errors import DataError, listing
from mtdsl.spec.data import CocoDataset
from mtdsl.train.data.box_mask_targets import object_array
from mtdsl.train.data.formats.coco_file import CocoAnnotation, CocoFile, keypoints_problem
from mtdsl.train.data.point_targets import PointTarget, PointTruth, point_lookup, task_names
from mtdsl.train.data.tasks import TaskLabels

__all__ = ["coco_point_targets", "points_category"]


def points_category(coco: CocoFile, task: TaskLabels, where: str) -> int:
    """The id of the category whose keypoints the task learns: the one that names its points.

    Raises:
        DataError: no category has keypoints, or several do and the task's points pick none of them.
    """
    if not coco.points:
        raise DataError(
            f"{where}: no category names keypoints, which {task.kind} task '{task.task}' learns",
            expected='a COCO keypoints file: a category with "keypoints": [names] and annotations with '
            '"keypoints": [x1, y1, v1, …]',
            hint="point the dataset at a keypoints file (person_keypoints_*.json), or make the task a detect task",
        )
    if len(coco.points) == 1:
        return next(iter(coco.points))
    wanted = set(task.classes) if isinstance(task.classes, tuple) else set()
    fitting = [category for category, names in coco.points.items() if wanted and wanted <= set(names)]
    if len(fitting) == 1:
        return fitting[0]
    named = [coco.categories[category] for category in coco.points]
    raise DataError(
        f"{where}: {len(coco.points)} categories name keypoints ({listing(named)}), and the points of "
        f"{task.kind} task '{task.task}' do not pick one",
        expected="the task's points (its classes) listed by exactly one category",
        hint="list the task's points by name, e.g. classes = [" + ", ".join(coco.points[next(iter(coco.points))][:3])
        + ", …]",
    )


def _instance(annotation: CocoAnnotation, count: int, where: str, image_id: Hashable, position: int,
              task: TaskLabels) -> np.ndarray:
    """The annotation's ``(count, 3)`` ``(x, y, v)``, checked; all zeros when it places no points."""
    if annotation.keypoints is None:
        return np.zeros((count, 3))
    problem = keypoints_problem(annotation.keypoints, count)
    if problem:
        name = f"annotation {annotation.id}" if annotation.id is not None else f"annotation at position {position}"
        raise DataError(
            f"{where}: {name} (image {image_id}) has {problem}",
            expected=f"keypoints [x1, y1, v1, …, x{count}, y{count}, v{count}]: pixels, and v 0 (not labelled), "
            "1 (labelled, hidden) or 2 (visible)",
            hint=f"{task.kind} task '{task.task}' reads every annotation of its category: fix or remove it",
        )
    return np.asarray(annotation.keypoints, dtype=np.float64).reshape(count, 3)


def coco_point_targets(
    coco: CocoFile, images: Sequence[Hashable], config: CocoDataset, task: TaskLabels, where: str
) -> np.ndarray:
    """Each image's :class:`~mtdsl.train.data.point_targets.PointTarget` for ``task``.

    Args:
        coco: the checked file.
        images: the ids of the images, in order.
        config: the dataset.
        task: the task of named points.
        where: how messages name the dataset.

    Raises:
        DataError: no category names the task's points (:func:`points_category`), the task's points
            are not the category's, or an annotation's keypoints are malformed (a length other than
            3 per point, a ``v`` other than 0, 1 or 2).
    """
    category = points_category(coco, task, where)
    own = coco.points[category]
    lookup = point_lookup(own, task, f"{where} (category '{coco.categories[category]}')")
    names = task_names(task, own)
    has = lookup >= 0
    targets = []
    for image_id in images:
        instances, areas, boxes, crowd = [], [], [], []
        for position, annotation in enumerate(coco.annotations.get(image_id, ())):
            if annotation.category != category:
                continue
            found = _instance(annotation, len(own), where, image_id, position, task)[np.maximum(lookup, 0)]
            found[~has] = 0
            x, y, width, height = annotation.bbox
            instances.append(found)
            areas.append(annotation.area if annotation.area is not None else width * height)
            boxes.append((x, y, x + width, y + height))
            crowd.append(annotation.crowd)
        keypoints = np.array(instances, dtype=np.float64).reshape(-1, len(names), 3)
        truth = PointTruth(image_id, keypoints, np.array(areas, dtype=np.float64),
                           np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(crowd, dtype=bool))
        learnt = [g for g in range(len(keypoints)) if not crowd[g] and (keypoints[g, :, 2] > 0).any()]
        if learnt:
            best = max(learnt, key=lambda g: (int((keypoints[g, :, 2] > 0).sum()), areas[g]))
            points, labelled = keypoints[best, :, :2].astype(np.float32), keypoints[best, :, 2] > 0
        else:
            points, labelled = np.zeros((len(names), 2), dtype=np.float32), np.zeros(len(names), dtype=bool)
        targets.append(PointTarget(points, labelled, names, has.copy(), truth))
    return object_array(targets)
