"""Image labels into targets: a classify, binary or multilabel task's target for every example of a :class:`Table`."""

from __future__ import annotations

import numpy as np

from mtdsl.errors import DataError, did_you_mean, listing
from mtdsl.train.data.sources import Table
from mtdsl.train.data.tasks import TaskLabels

__all__ = ["ENCODERS", "encode_targets"]


def _resolve_classes(task: TaskLabels, space: tuple[str, ...], exact: bool, where: str) -> tuple[str, ...]:
    """The task's class names in index order, checked against the labels the dataset has."""
    if isinstance(task.classes, int):
        if len(space) != task.classes:
            raise DataError(
                f"{where}: task '{task.task}' has classes = {task.classes}, "
                f"but the dataset has {len(space)} labels: {listing(space)}",
                hint=f"write classes = {len(space)}, or list the class names the task should learn",
            )
        return space
    classes = tuple(task.classes or ())
    unknown = [name for name in classes if name not in space]
    if unknown and not task.partial:
        raise DataError(
            f"{where}: task '{task.task}' lists class '{unknown[0]}', which the dataset does not have",
            expected=f"its labels: {listing(space)}",
            hint=did_you_mean(unknown[0], space) or "fix the class name, or point the task at another dataset or label",
        )
    extra = [name for name in space if name not in classes]
    if exact and extra:
        raise DataError(
            f"{where}: the dataset has labels that task '{task.task}' does not list: {listing(extra)}",
            expected=f"classes naming all {len(space)} labels: {listing(space)}",
            hint=f"add them to the task's classes (or write classes = {len(space)}), or remove their images",
        )
    return classes


#: A binary or multilabel target the example's dataset does not give (an ``unknown`` cell, or a class
#: another dataset of a joined task labels): losses and metrics skip it.
UNKNOWN = float("nan")


def _classify_targets(task: TaskLabels, table: Table, rows: list[list[str] | None]) -> np.ndarray:
    classes = _resolve_classes(task, table.spaces[task.task], table.exact, table.where)
    index = {name: i for i, name in enumerate(classes)}
    targets = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        if row is None:
            raise DataError(
                f"{table.where}: {table.images[i]} is not labelled (its cell is the unknown marker), "
                f"but classify task '{task.task}' needs one label for every image it reads",
                expected="one of its classes in every row",
                hint="label the image, or leave its row out of the manifest; binary and multilabel tasks "
                "read unknown cells",
            )
        if len(row) != 1:
            raise DataError(
                f"{table.where}: {table.images[i]} has {len(row)} labels ({', '.join(row) or 'none'}), "
                f"but classify task '{task.task}' needs exactly one",
                hint="make the task multilabel, or give every image one label",
            )
        if row[0] not in index:
            raise DataError(
                f"{table.where}: label '{row[0]}' of {table.images[i]} is not a class of task '{task.task}'",
                expected=f"one of its classes: {listing(classes)}",
                hint=f"add '{row[0]}' to the task's classes, or drop the image from the dataset",
            )
        targets[i] = index[row[0]]
    return targets


def _binary_targets(task: TaskLabels, table: Table, rows: list[list[str] | None]) -> np.ndarray:
    space = table.spaces[task.task]
    positive = task.positive
    if positive is None:
        if not set(space) <= {"0", "1"}:
            raise DataError(
                f"{table.where}: binary task '{task.task}' does not say which label counts as yes",
                expected=f"positive = one of {listing(space)}",
                hint=f'add positive = "{space[0] if space else "…"}" to the task',
            )
        positive = "1"
    elif positive not in space:
        raise DataError(
            f"{table.where}: task '{task.task}' has positive = \"{positive}\", a label the dataset does not have",
            expected=f"one of its labels: {listing(space)}",
            hint=did_you_mean(positive, space) or "fix the label, or point the task at another label with label = …",
        )
    return np.array([UNKNOWN if row is None else positive in row for row in rows], dtype=np.float32)


def _multilabel_targets(task: TaskLabels, table: Table, rows: list[list[str] | None]) -> np.ndarray:
    """``(N, C)`` 0/1, :data:`UNKNOWN` in a row whose cell is unknown and in the columns of task classes
    the dataset does not label (a joined task's classes that only its other datasets have)."""
    space = table.spaces[task.task]
    classes = _resolve_classes(task, space, False, table.where)
    index = {name: i for i, name in enumerate(classes)}
    targets = np.zeros((len(rows), len(classes)), dtype=np.float32)
    for i, row in enumerate(rows):
        if row is None:
            targets[i] = UNKNOWN
            continue
        for label in row:
            if label in index:
                targets[i, index[label]] = 1.0
    labelled = np.array([name in space for name in classes], dtype=bool)
    if not labelled.any():
        raise DataError(
            f"{table.where} labels none of the classes of task '{task.task}': {', '.join(classes)}",
            expected=f"a task class among its labels: {listing(space)}",
            hint="check the spelling of the task's classes (or the dataset's classes), or take the dataset "
            "out of the task",
        )
    targets[:, ~labelled] = UNKNOWN
    return targets


ENCODERS = {"classify": _classify_targets, "binary": _binary_targets, "multilabel": _multilabel_targets}


def encode_targets(task: TaskLabels, table: Table) -> np.ndarray:
    """Every example's target for ``task`` (see :class:`Examples` for shapes and dtypes)."""
    encoder = ENCODERS.get(task.kind)
    if encoder is None:
        raise DataError(
            f"task '{task.task}' is a {task.kind} task; data can be read for {', '.join(ENCODERS)} tasks only"
        )
    return encoder(task, table, table.labels[task.task])
