"""The training side of ``binary``: one yes/no target per image (nan: unknown), and balanced accuracy.

Importing it registers its entries in the training layer's tables (:mod:`mtdsl.train.kinds` does).
"""

from __future__ import annotations

import numpy as np

from mtdsl.errors import DataError, did_you_mean, listing
from mtdsl.kinds.binary.kind import BINARY
from mtdsl.train.data.joint import IS_UNKNOWN, UNKNOWN_TARGETS
from mtdsl.train.data.labels import ENCODERS, UNKNOWN
from mtdsl.train.data.sources import Table
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.metrics.labels import BinaryMetric
from mtdsl.train.metrics.metric import register_metric
from mtdsl.train.run.showcase import SHOWN, caption

SHOWN.register(BINARY.name)(caption)
register_metric(BINARY.name)(BinaryMetric)


@ENCODERS.register(BINARY.name)
def targets(task: TaskLabels, table: Table, rows: list[list[str] | None]) -> np.ndarray:
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


@UNKNOWN_TARGETS.register(BINARY.name)
def unknown(like: np.ndarray, count: int) -> np.ndarray:
    """nan (:data:`UNKNOWN`): the loss leaves the element out."""
    return np.full(count, UNKNOWN, dtype=like.dtype)


@IS_UNKNOWN.register(BINARY.name)
def is_unknown(targets: np.ndarray) -> np.ndarray:
    return np.isnan(targets)
