"""The table of dataset readers: one per format, under the name its config is registered with in :mod:`mtdsl.spec.data`.

A reader is ``reader(config, tasks) -> Table``: every example of the dataset,
with each image-label task's labels (:attr:`Table.labels`) and each detect or
segment task's targets (:attr:`Table.targets`). A format the spec layer knows
and no reader implements is caught by a test (``READERS.missing()``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mtdsl.spec.data import DATASETS, DatasetConfig
from mtdsl.spec.registry import Builders
from mtdsl.train.data.sources import Table
from mtdsl.train.data.tasks import TaskLabels

__all__ = ["READERS", "Reader", "read_table"]

#: ``reader(config, tasks)``: a format's config and the tasks that read it (each format takes its own config class).
Reader = Callable[..., Table]

READERS: Builders[Reader] = Builders(DATASETS)


def read_table(config: DatasetConfig, tasks: Sequence[TaskLabels]) -> Table:
    """Every example of ``config``, with each task's labels or targets, read by its format's reader."""
    return READERS.build(config, tasks)
