"""The ``synthetic`` format's image labels: ``count`` generated samples; a task learns one field of each."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from mtdsl.errors import DataError, did_you_mean
from mtdsl.spec.data import SyntheticDataset
from mtdsl.train.data.box_mask_targets import synthetic_targets
from mtdsl.train.data.formats.registry import READERS
from mtdsl.train.data.point_targets import synthetic_point_targets
from mtdsl.train.data.sources import Table, describe
from mtdsl.train.data.synthetic import SYNTHETIC_FIELDS, synthetic_labels
from mtdsl.train.data.tasks import TaskLabels


@lru_cache(maxsize=8)
def _synthetic_fields(count: int, seed: int) -> dict[str, np.ndarray]:
    drawn = [synthetic_labels(index, seed) for index in range(count)]
    return {field: np.array([labels.field(field) for labels in drawn]) for field in SYNTHETIC_FIELDS}


@READERS.register("synthetic")
def read_synthetic(config: SyntheticDataset, tasks: Sequence[TaskLabels]) -> Table:
    """``count`` generated samples: an image-label task learns the field named by its ``label``.

    The label field defaults to the task's own name; a detect task learns the
    shape's box and a segment task its mask (:func:`~mtdsl.train.data.box_mask_targets.synthetic_targets`),
    a task of points its box's corners (:func:`~mtdsl.train.data.point_targets.synthetic_point_targets`).
    """
    where = describe(config)
    values = _synthetic_fields(config.count, config.seed)
    labels: dict[str, list[list[str] | None]] = {}
    spaces: dict[str, tuple[str, ...]] = {}
    targets = {}
    for task in tasks:
        if task.learns_from == "points":
            targets[task.task] = synthetic_point_targets(config, task)
            continue
        if task.dense:
            targets[task.task] = synthetic_targets(config, task)
            continue
        field = task.label or task.task
        if field not in SYNTHETIC_FIELDS:
            raise DataError(
                f"{where} has no label field '{field}' for task '{task.task}'",
                expected=f"one of its fields: {', '.join(SYNTHETIC_FIELDS)}",
                hint=did_you_mean(field, SYNTHETIC_FIELDS)
                or f"add label = shape (or colour, large) to task '{task.task}'",
            )
        names = SYNTHETIC_FIELDS[field] or ("0", "1")  # a yes/no field reads as 0/1
        labels[task.task] = [[names[value]] for value in values[field].tolist()]
        spaces[task.task] = names
    return Table(list(range(config.count)), labels, spaces, exact=True, parts=None, where=where, targets=targets)
