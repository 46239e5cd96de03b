"""A stream: one source of batches (its datasets, the tasks they train, how batches are drawn).

:func:`mtdsl.spec.streams.plan_streams` plans a spec's streams; a validated
:class:`~mtdsl.spec.document.Spec` keeps its plan (``spec.streams``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stream:
    """One source of batches: its datasets, the tasks trained on them, and how its batches are drawn.

    Attributes:
        datasets: the spec's dataset names; the examples of several are joined into one pool.
        tasks: the tasks each batch trains, in spec order.
        batch_size: examples per batch.
        balanced: the binary task whose batches are half positive, half negative, if any.
    """

    datasets: tuple[str, ...]
    tasks: tuple[str, ...]
    batch_size: int
    balanced: str | None = None

    @property
    def dataset(self) -> str:
        """The stream's source in messages and file names: ``coco``, or ``pets+coco`` for joined datasets."""
        return "+".join(self.datasets)

    @property
    def label(self) -> str:
        return "+".join(self.tasks)
