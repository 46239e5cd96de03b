"""Image labels into targets: an image-label task's target for every example of a :class:`Table`.

Each image-label kind registers its encoder in :data:`ENCODERS` from its folder; the class
resolution they share is here."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mtdsl.errors import DataError, did_you_mean, listing
from mtdsl.kinds.registry import KindTable
from mtdsl.train.data.sources import Table
from mtdsl.train.data.tasks import TaskLabels

__all__ = ["ENCODERS", "IGNORED_CLASS", "UNKNOWN", "Encoder", "encode_targets", "resolve_classes"]

Encoder = Callable[[TaskLabels, Table, "list[list[str] | None]"], np.ndarray]


def resolve_classes(task: TaskLabels, space: tuple[str, ...], exact: bool, where: str) -> tuple[str, ...]:
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

#: A classify target the example's dataset does not give (an ``unknown`` cell): PyTorch's
#: ``CrossEntropyLoss`` ``ignore_index``, which the loss, the metric and the class checks skip.
IGNORED_CLASS = -100


#: How each image-label kind turns a table's labels into targets, registered from the kind's folder
#: (``mtdsl/kinds/<kind>/train.py``): ``encode(task, table, rows) -> np.ndarray``.
ENCODERS: KindTable[Encoder] = KindTable("label encoder", loads="mtdsl.train.kinds")


def encode_targets(task: TaskLabels, table: Table) -> np.ndarray:
    """Every example's target for ``task`` (see :class:`Examples` for shapes and dtypes)."""
    encoder = ENCODERS.get(task.kind)
    if encoder is None:
        raise DataError(
            f"task '{task.task}' is a {task.kind} task; data can be read for {', '.join(ENCODERS)} tasks only"
        )
    return encoder(task, table, table.labels[task.task])
