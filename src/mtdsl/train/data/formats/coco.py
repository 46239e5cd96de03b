"""The ``coco`` format: a COCO file's boxes (detect tasks), instance masks (segment tasks) and keypoints.

The file is read and checked by :mod:`mtdsl.train.data.formats.coco_file`,
its boxes become targets in :mod:`~mtdsl.train.data.formats.boxes`, its
polygons and RLEs masks in :mod:`~mtdsl.train.data.formats.coco_masks`, and a
keypoints file's points those of tasks of named points in :mod:`~mtdsl.train.data.formats.coco_points`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

from mtdsl.errors import DataError, did_you_mean, listing
from mtdsl.spec.data import CocoDataset
from mtdsl.train.data.box_mask_targets import CocoTruth
from mtdsl.train.data.formats.boxes import DetectionExamples, boxes_table
from mtdsl.train.data.formats.coco_file import CocoAnnotation, CocoFile, read_coco_file
from mtdsl.train.data.formats.coco_masks import coco_mask_targets
from mtdsl.train.data.formats.coco_points import coco_point_targets
from mtdsl.train.data.formats.registry import READERS
from mtdsl.train.data.sources import Table, check_images_exist, describe
from mtdsl.train.data.tasks import TaskLabels

__all__ = ["DetectionExamples", "read_coco", "read_coco_dataset"]


def _pick_categories(
    categories: dict[int, str], classes: Sequence[str] | None, where: str
) -> tuple[tuple[str, ...], dict[int, int]]:
    """Class names in index order and ``{COCO category id: class index}``."""
    if classes is None:
        ids = sorted(categories)
        return tuple(categories[i] for i in ids), {cat: index for index, cat in enumerate(ids)}
    by_name = {name: cat for cat, name in categories.items()}
    for name in classes:
        if name not in by_name:
            raise DataError(
                f"{where}: no category '{name}' in the annotations",
                expected=f"one of its {len(by_name)} categories: {listing(by_name, limit=100)}",
                hint=did_you_mean(name, by_name) or "fix the class name, or point the task at another dataset",
            )
    repeated = sorted({name for name in classes if list(classes).count(name) > 1})
    if repeated:
        raise DataError(f"{where}: class '{repeated[0]}' is listed twice", hint="list each class once")
    return tuple(classes), {by_name[name]: index for index, name in enumerate(classes)}


def read_coco(
    instances_json: Path | str,
    images_dir: Path | str,
    classes: Sequence[str] | None = None,
    *,
    keep_empty: bool = True,
) -> DetectionExamples:
    """Read a COCO ``instances`` file: each image's boxes, in the order of the ``images`` list.

    Args:
        instances_json: the COCO annotation file (``bbox`` as ``[x, y, w, h]`` pixels).
        images_dir: the folder the images' ``file_name`` is relative to.
        classes: the COCO category names to learn, in class-index order; boxes
            of other categories are dropped. ``None`` takes every category,
            sorted by id.
        keep_empty: keep images with no box of ``classes`` as negatives. Pass
            ``False`` when an image without boxes means "not labelled" rather
            than "nothing there": oxford-pets-3class lists 600 images but boxes
            the heads of only 296.

    Returns:
        The examples. Crowd regions and boxes with no area are dropped from the
        boxes training learns from, and kept in each image's :class:`~mtdsl.train.data.box_mask_targets.CocoTruth`.

    Raises:
        DataError: the file or folder is missing or unreadable, an entry of the
            file is malformed (see :func:`~mtdsl.train.data.formats.coco_file.read_coco_file`),
            an image file is missing, or a class name is not a category of the file.
    """
    instances_json, images_dir = Path(instances_json), Path(images_dir)
    where = f"COCO annotations {instances_json}"
    if not instances_json.is_file():
        raise DataError(f"the COCO annotation file {instances_json} does not exist", expected="a COCO instances JSON")
    if not images_dir.is_dir():
        raise DataError(f"{where}: the images folder {images_dir} does not exist", expected="the folder of file_name")
    coco = read_coco_file(instances_json)
    return _examples(coco, images_dir, where, classes, keep_empty)[0]


def _examples(
    coco: CocoFile, images_dir: Path, where: str, classes: Sequence[str] | None = None, keep_empty: bool = True
) -> tuple[DetectionExamples, list[Hashable]]:
    """The file's images and boxes, and the id of each image kept."""
    names, index_of = _pick_categories(coco.categories, classes, where)
    ids: list[Hashable] = []
    images: list[str] = []
    boxes: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    truth: list[CocoTruth] = []
    for image_id, file_name in coco.images:
        found = [
            (ann.bbox, index_of[ann.category])
            for ann in coco.annotations.get(image_id, ())
            if ann.category in index_of and not ann.crowd
        ]
        xywh = np.array([bbox for bbox, _ in found], dtype=np.float32).reshape(-1, 4)
        keep = (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
        if not keep.any() and not keep_empty:
            continue
        xyxy = np.concatenate([xywh[keep, :2], xywh[keep, :2] + xywh[keep, 2:]], axis=1)
        ids.append(image_id)
        images.append(str(images_dir / file_name))
        boxes.append(np.ascontiguousarray(xyxy, dtype=np.float32))
        labels.append(np.array([label for (_, label), k in zip(found, keep) if k], dtype=np.int64))
        truth.append(_coco_truth(image_id, coco.annotations.get(image_id, ()), index_of))

    check_images_exist(images, where, expected=f"every file_name under {images_dir}",
                       hint="check the images folder the annotation file's file names are relative to")
    return DetectionExamples(tuple(images), tuple(boxes), tuple(labels), names, tuple(truth)), ids


def _coco_truth(image_id: Hashable, annotations: Sequence[CocoAnnotation], index_of: dict[int, int]) -> CocoTruth:
    """An image's annotations of the categories in ``index_of``.

    Returns:
        them as a :class:`~mtdsl.train.data.box_mask_targets.CocoTruth`.
    """
    kept = [ann for ann in annotations if ann.category in index_of]
    xywh = np.array([ann.bbox for ann in kept], dtype=np.float64).reshape(-1, 4)
    return CocoTruth(
        image_id=image_id,
        boxes=np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
        classes=np.array([index_of[ann.category] for ann in kept], dtype=np.int64),
        areas=np.array([ann.area if ann.area is not None else ann.bbox[2] * ann.bbox[3] for ann in kept],
                       dtype=np.float64),
        crowd=np.array([ann.crowd for ann in kept], dtype=bool),
    )


@READERS.register("coco")
def read_coco_dataset(config: CocoDataset, tasks: Sequence[TaskLabels]) -> Table:
    """A ``coco`` dataset: images, each detect task's :class:`BoxTarget`, each segment task's mask and each
    points task's :class:`~mtdsl.train.data.point_targets.PointTarget` per image.

    The file is read once; each detect task takes the categories it names,
    each segment task paints them (:mod:`~mtdsl.train.data.formats.coco_masks`).
    With ``keep_empty = false``, images with no box for any detect task are left out.
    """
    where = describe(config)
    annotations, images_dir = Path(config.annotations), Path(config.images)
    if not annotations.is_file():
        raise DataError(f"{where}: the annotation file {annotations} does not exist", expected="a COCO instances JSON")
    if not images_dir.is_dir():
        raise DataError(f"{where}: the images folder {images_dir} does not exist", expected="the folder of file_name")
    coco = read_coco_file(annotations)
    every, ids = _examples(coco, images_dir, f"COCO annotations {annotations}")
    extra = {
        task.task: coco_mask_targets(coco, ids, config, task, where) for task in tasks if task.learns_from == "masks"
    }
    extra.update({
        task.task: coco_point_targets(coco, ids, config, task, where) for task in tasks if task.learns_from == "points"
    })
    return boxes_table(config, tasks, every, where, extra=extra)
