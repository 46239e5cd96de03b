"""The ``coco`` format: a COCO ``instances`` file's boxes, as each detect task's :class:`BoxTarget` per image.

The file is read and checked by :mod:`mtdsl.train.data.formats.coco_file`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtdsl.errors import DataError, did_you_mean, listing
from mtdsl.spec.data import CocoDataset
from mtdsl.train.data.dense import BoxTarget, boxes_in_task_classes, check_dense_classes, object_array
from mtdsl.train.data.formats.coco_file import read_coco_file
from mtdsl.train.data.sources import ImageRef, Table, check_images_exist, describe
from mtdsl.train.data.tasks import TaskLabels

__all__ = ["DetectionExamples", "read_coco", "read_coco_dataset"]


@dataclass(frozen=True, eq=False)
class DetectionExamples:
    """Images with their boxes: what :func:`read_coco` reads from a COCO file.

    Attributes:
        images: file paths.
        boxes: per image a ``(G, 4)`` float32 array of ``(x0, y0, x1, y1)`` in
            the image file's pixels (``G`` may be 0: a negative image).
        classes: per image a ``(G,)`` int64 array of indices into ``class_names``.
        class_names: the class names in index order.
    """

    images: tuple[ImageRef, ...]
    boxes: tuple[np.ndarray, ...]
    classes: tuple[np.ndarray, ...]
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def box_count(self) -> int:
        return sum(len(boxes) for boxes in self.boxes)

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
        The examples. Crowd regions and boxes with no area are dropped.

    Raises:
        DataError: the file or folder is missing or unreadable, an entry of the
            file is malformed (see :func:`~mtdsl.train.data.coco_file.read_coco_file`),
            an image file is missing, or a class name is not a category of the file.
    """
    instances_json, images_dir = Path(instances_json), Path(images_dir)
    where = f"COCO annotations {instances_json}"
    if not instances_json.is_file():
        raise DataError(f"the COCO annotation file {instances_json} does not exist", expected="a COCO instances JSON")
    if not images_dir.is_dir():
        raise DataError(f"{where}: the images folder {images_dir} does not exist", expected="the folder of file_name")
    coco = read_coco_file(instances_json)
    names, index_of = _pick_categories(coco.categories, classes, where)

    images: list[str] = []
    boxes: list[np.ndarray] = []
    labels: list[np.ndarray] = []
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
        images.append(str(images_dir / file_name))
        boxes.append(np.ascontiguousarray(xyxy, dtype=np.float32))
        labels.append(np.array([label for (_, label), k in zip(found, keep) if k], dtype=np.int64))

    check_images_exist(images, where, expected=f"every file_name under {images_dir}",
                       hint="check the images folder the annotation file's file names are relative to")
    return DetectionExamples(tuple(images), tuple(boxes), tuple(labels), names)


def _check_annotated(
    annotated: Sequence[str], categories: Sequence[str], names: Sequence[str], task: TaskLabels,
    config: CocoDataset, where: str,
) -> None:
    """Every class a coco dataset annotates for ``task`` must be a category of its file and a class of the task.

    With ``config.classes`` unset, a single dataset annotates all the task's
    classes; a joined task's dataset (``task.partial``) annotates those of its
    categories the task has, which are both by construction.
    """
    if config.classes is None and task.partial:
        return
    for name in annotated:
        if name not in categories:
            who = f"task '{task.task}' lists" if config.classes is None else "the dataset's classes list"
            raise DataError(
                f"{where}: {who} class '{name}', which is not a category of {config.annotations}",
                expected=f"one of its {len(categories)} categories: {listing(categories, limit=100)}",
                hint=did_you_mean(name, categories)
                or (
                    "fix the class name, or list the task classes this dataset annotates with classes = [...] "
                    "on the dataset (the others are then masked out of its images' losses)"
                    if config.classes is None
                    else "fix the class name, or remove it from the dataset's classes"
                ),
            )
        if name not in names:
            raise DataError(
                f"{where}: the dataset's classes list '{name}', which task '{task.task}' does not have",
                expected=f"one of the task's classes: {listing(names)}",
                hint=did_you_mean(name, names)
                or f"add '{name}' to the task's classes, or remove it from the dataset's",
            )


def _coco_task_targets(every: DetectionExamples, config: CocoDataset, task: TaskLabels, where: str) -> np.ndarray:
    """Each image's :class:`BoxTarget` for ``task``, from ``every`` (all categories, indexed in category-id order).

    For a task that learns from several datasets (``task.partial``) the
    dataset annotates the task classes among its categories (or its
    ``classes``, or its ``one_class``); the others are masked out of its images.
    """
    categories = every.class_names
    if task.partial and isinstance(task.classes, tuple):
        if config.one_class is not None:
            own: tuple[str, ...] = (config.one_class,)
            found = [(boxes, np.zeros(len(boxes), dtype=np.int64)) for boxes in every.boxes]
        else:
            own = categories if config.classes is None else tuple(config.classes)
            _check_annotated(own, categories, task.classes, task, config, where)
            position = np.array([own.index(name) if name in own else -1 for name in categories], dtype=np.int64)
            found = [(boxes[position[classes] >= 0], position[classes][position[classes] >= 0])
                     for boxes, classes in zip(every.boxes, every.classes)]
        return boxes_in_task_classes(found, own, task.classes, where)
    if config.one_class is not None:
        check_dense_classes(task, (config.one_class,), where)
        one = np.array([True])
        return object_array([BoxTarget(boxes, np.zeros(len(boxes), dtype=np.int64), one) for boxes in every.boxes])
    if isinstance(task.classes, int) and task.classes != len(categories):
        raise DataError(
            f"{where}: task '{task.task}' has classes = {task.classes}, but {config.annotations} has "
            f"{len(categories)} categories",
            expected=f"its categories: {listing(categories, limit=100)}",
            hint=f"write classes = {len(categories)}, or list by name the categories the task learns",
        )
    names = categories if isinstance(task.classes, int) or not task.classes else tuple(task.classes)
    annotated = tuple(config.classes) if config.classes else names
    _check_annotated(annotated, categories, names, task, config, where)
    index = {name: i for i, name in enumerate(names)}
    lookup = np.array([index[name] if name in annotated else -1 for name in categories], dtype=np.int64)
    mask = np.array([name in annotated for name in names], dtype=bool)
    found = []
    for boxes, classes in zip(every.boxes, every.classes):
        mapped = lookup[classes]
        keep = mapped >= 0
        found.append(BoxTarget(boxes[keep], mapped[keep], mask))
    return object_array(found)


def read_coco_dataset(config: CocoDataset, tasks: Sequence[TaskLabels]) -> Table:
    """A ``coco`` dataset for its detect tasks: images and each task's :class:`BoxTarget` per image.

    The file is read once; each task takes the categories it names. With
    ``keep_empty = false``, images with no box for any of the tasks are left out.
    """
    where = describe(config)
    every = read_coco(config.annotations, config.images)
    targets = {task.task: _coco_task_targets(every, config, task, where) for task in tasks}
    kept = np.arange(len(every))
    if not config.keep_empty:
        kept = np.array(
            [i for i in range(len(every)) if any(len(found[i].boxes) for found in targets.values())], dtype=np.int64
        )
    if not len(kept):
        raise DataError(
            f"{where}: no image has a box of the tasks' classes",
            hint="check the task's classes against the file's categories, or write keep_empty = true",
        )
    return Table(
        images=[every.images[i] for i in kept.tolist()],
        labels={},
        spaces={},
        exact=True,
        parts=None,
        where=where,
        targets={task: found[kept] for task, found in targets.items()},
    )
