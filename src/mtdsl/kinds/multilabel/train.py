"""The training side of ``multilabel``: a multi-hot target per image (nan: unknown), and per-label metrics.

Importing it registers its entries in the training layer's tables (:mod:`mtdsl.train.kinds` does).
"""

from __future__ import annotations

import numpy as np

from mtdsl.errors import DataError, listing
from mtdsl.kinds.multilabel.kind import MULTILABEL
from mtdsl.train.data.examples import LABELLED
from mtdsl.train.data.joint import IS_UNKNOWN, UNKNOWN_TARGETS
from mtdsl.train.data.labels import ENCODERS, UNKNOWN, resolve_classes
from mtdsl.train.data.sources import Table
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.metrics.labels import MultilabelMetric
from mtdsl.train.metrics.metric import register_metric
from mtdsl.train.run.showcase import SHOWN, caption

SHOWN.register(MULTILABEL.name)(caption)
register_metric(MULTILABEL.name)(MultilabelMetric)


@ENCODERS.register(MULTILABEL.name)
def targets(task: TaskLabels, table: Table, rows: list[list[str] | None]) -> np.ndarray:
    """``(N, C)`` 0/1, :data:`UNKNOWN` in a row whose cell is unknown and in the columns of task classes
    the dataset does not label (a joined task's classes that only its other datasets have)."""
    space = table.spaces[task.task]
    classes = resolve_classes(task, space, False, table.where)
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


@LABELLED.register(MULTILABEL.name)
def labelled(targets: np.ndarray, count: int) -> np.ndarray:
    """The classes some image of the split knows (a 0 or a 1, not unknown)."""
    found = np.zeros(count, dtype=bool)
    found |= (~np.isnan(targets)).any(axis=0)
    return found


@UNKNOWN_TARGETS.register(MULTILABEL.name)
def unknown(like: np.ndarray, count: int) -> np.ndarray:
    """nan (:data:`UNKNOWN`) for every class: the loss leaves each element out."""
    return np.full((count, *like.shape[1:]), UNKNOWN, dtype=like.dtype)


@IS_UNKNOWN.register(MULTILABEL.name)
def is_unknown(targets: np.ndarray) -> np.ndarray:
    """Examples that say nothing about any class (one that labels some classes is known)."""
    return np.isnan(targets).all(axis=1)
