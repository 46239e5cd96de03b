"""What the formats that hold boxes share (``coco``, ``yolo``, ``voc``): each detect task's targets, and the table.

A reader lists every image with all its boxes in the dataset's own categories
(:class:`DetectionExamples`); :func:`boxes_table` then makes each detect task's
:class:`~mtdsl.train.data.box_mask_targets.BoxTarget` per image, honouring the
dataset's ``classes``, ``one_class`` and ``keep_empty``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mtdsl.errors import DataError, did_you_mean, listing
from mtdsl.spec.data import BoxesDataset
from mtdsl.train.data.box_mask_targets import (
    BoxTarget,
    CocoTruth,
    boxes_in_task_classes,
    check_dense_classes,
    object_array,
)
from mtdsl.train.data.sources import ImageRef, Table
from mtdsl.train.data.tasks import TaskLabels

__all__ = ["DetectionExamples", "box_targets", "boxes_table"]


@dataclass(frozen=True, eq=False)
class DetectionExamples:
    """Images with their boxes: what a reader of boxes lists.

    Attributes:
        images: file paths.
        boxes: per image a ``(G, 4)`` float32 array of ``(x0, y0, x1, y1)`` in
            the image file's pixels (``G`` may be 0: a negative image).
        classes: per image a ``(G,)`` int64 array of indices into ``class_names``.
        class_names: the class names in index order.
        truth: per image every annotation of ``class_names`` as COCO evaluation
            reads it, crowds and boxes with no area included (a ``coco`` file's;
            empty for readers without one, whose ``boxes`` then serve).
    """

    images: tuple[ImageRef, ...]
    boxes: tuple[np.ndarray, ...]
    classes: tuple[np.ndarray, ...]
    class_names: tuple[str, ...]
    truth: tuple[CocoTruth, ...] = ()

    def __len__(self) -> int:
        return len(self.images)

    @property
    def box_count(self) -> int:
        return sum(len(boxes) for boxes in self.boxes)


def _check_annotated(
    annotated: Sequence[str], categories: Sequence[str], names: Sequence[str], task: TaskLabels,
    config: BoxesDataset, where: str,
) -> None:
    """Every class a dataset of boxes annotates for ``task`` must be a category of its file and a class of the task.

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
                f"{where}: {who} class '{name}', which is not a category of the dataset",
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


def _learned_targets(every: DetectionExamples, config: BoxesDataset, task: TaskLabels, where: str) -> np.ndarray:
    """Each image's :class:`BoxTarget` for ``task`` as training learns it, from ``every`` (all its categories).

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
            f"{where}: task '{task.task}' has classes = {task.classes}, but the dataset has "
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
    targets: list[BoxTarget] = []
    for boxes, classes in zip(every.boxes, every.classes):
        mapped = lookup[classes]
        keep = mapped >= 0
        targets.append(BoxTarget(boxes[keep], mapped[keep], mask))
    return object_array(targets)


def _truth_lookup(categories: tuple[str, ...], config: BoxesDataset, task: TaskLabels) -> np.ndarray:
    """``(K,)`` int64: the task class index of each category of the dataset, -1 for those the task does not learn here.

    The same choice :func:`_learned_targets` makes for the boxes training learns from.
    """
    names = tuple(task.classes) if isinstance(task.classes, tuple) and task.classes else categories
    if config.one_class is not None:
        return np.full(len(categories), names.index(config.one_class) if config.one_class in names else 0)
    annotated = set(config.classes) if config.classes is not None else set(names)
    return np.array([names.index(name) if name in names and name in annotated else -1 for name in categories],
                    dtype=np.int64)


def _with_truth(targets: np.ndarray, every: DetectionExamples, lookup: np.ndarray) -> np.ndarray:
    """``targets`` with each image's :class:`CocoTruth`, in the task's classes, attached."""
    return object_array([
        BoxTarget(target.boxes, target.classes, target.annotated, truth.select(lookup))
        for target, truth in zip(targets, every.truth)
    ])


def box_targets(every: DetectionExamples, config: BoxesDataset, task: TaskLabels, where: str) -> np.ndarray:
    """Each image's :class:`BoxTarget` for ``task``, from ``every`` (all the dataset's categories, in its order).

    Each carries the image's :class:`CocoTruth` in the task's classes where
    ``every`` has one (what evaluation scores against); the boxes it learns
    from are those of :func:`_learned_targets`.
    """
    targets = _learned_targets(every, config, task, where)
    if not every.truth:
        return targets
    return _with_truth(targets, every, _truth_lookup(every.class_names, config, task))


def boxes_table(
    config: BoxesDataset,
    tasks: Sequence[TaskLabels],
    every: DetectionExamples,
    where: str,
    parts: dict[str, np.ndarray] | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> Table:
    """The :class:`Table` of a dataset of boxes: each detect task's :class:`BoxTarget` per image.

    Args:
        config: the dataset (its ``classes``, ``one_class``, ``keep_empty``).
        tasks: the tasks that read it; the detect tasks' targets are made here.
        every: every image with all its boxes.
        where: how messages name the dataset.
        parts: the dataset's own split (image indices per split), or ``None``.
        extra: targets of other tasks the reader made (per task, one per image of ``every``).

    Raises:
        DataError: a task's classes do not fit the dataset's categories, or
            (``keep_empty = false``) no image has a box of the tasks' classes.
    """
    targets = {task.task: box_targets(every, config, task, where) for task in tasks if task.learns_from == "boxes"}
    targets.update(extra or {})
    kept = np.arange(len(every))
    if not config.keep_empty:
        boxed = [found for task, found in targets.items() if task not in (extra or {})]
        kept = np.array([i for i in range(len(every)) if any(len(found[i].boxes) for found in boxed)], dtype=np.int64)
    if not len(kept):
        raise DataError(
            f"{where}: no image has a box of the tasks' classes",
            hint="check the task's classes against the dataset's categories, or write keep_empty = true",
        )
    if parts is not None:
        position = np.full(len(every), -1, dtype=np.int64)
        position[kept] = np.arange(len(kept))
        parts = {name: position[indices][position[indices] >= 0] for name, indices in parts.items()}
    return Table(
        images=[every.images[i] for i in kept.tolist()],
        labels={},
        spaces={},
        exact=True,
        parts=parts,
        where=where,
        targets={task: found[kept] for task, found in targets.items()},
    )
