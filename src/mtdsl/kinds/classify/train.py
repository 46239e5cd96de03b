"""The training side of ``classify``: one class index per image (or :data:`IGNORED_CLASS`), and accuracy.

Importing it registers its entries in the training layer's tables (:mod:`mtdsl.train.kinds` does).
"""

from __future__ import annotations

import numpy as np

from mtdsl.errors import DataError, listing
from mtdsl.kinds.classify.kind import CLASSIFY
from mtdsl.train.data.examples import LABELLED
from mtdsl.train.data.joint import IS_UNKNOWN, UNKNOWN_TARGETS
from mtdsl.train.data.labels import ENCODERS, IGNORED_CLASS, resolve_classes
from mtdsl.train.data.sources import Table
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.metrics.labels import ClassifyMetric
from mtdsl.train.metrics.metric import register_metric
from mtdsl.train.run.showcase import SHOWN, caption

SHOWN.register(CLASSIFY.name)(caption)
register_metric(CLASSIFY.name)(ClassifyMetric)


@ENCODERS.register(CLASSIFY.name)
def targets(task: TaskLabels, table: Table, rows: list[list[str] | None]) -> np.ndarray:
    classes = resolve_classes(task, table.spaces[task.task], table.exact, table.where)
    index = {name: i for i, name in enumerate(classes)}
    targets = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        if row is None:  # the unknown marker: this image teaches the task nothing
            targets[i] = IGNORED_CLASS
            continue
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


@LABELLED.register(CLASSIFY.name)
def labelled(targets: np.ndarray, count: int) -> np.ndarray:
    """The classes some image of the split has (an unknown one, :data:`IGNORED_CLASS`, has none)."""
    found = np.zeros(count, dtype=bool)
    found[np.unique(targets[targets != IGNORED_CLASS])] = True
    return found


@UNKNOWN_TARGETS.register(CLASSIFY.name)
def unknown(like: np.ndarray, count: int) -> np.ndarray:
    """The ignored class: the cross-entropy leaves the example out."""
    return np.full(count, IGNORED_CLASS, dtype=like.dtype)


@IS_UNKNOWN.register(CLASSIFY.name)
def is_unknown(targets: np.ndarray) -> np.ndarray:
    return targets == IGNORED_CLASS
