"""Streaming evaluation metrics per task, registered by task kind, and the model-selection score.

Each metric accumulates counts, never the outputs themselves, so its memory does
not grow with the evaluation set; the contract is :class:`~mtdsl.train.metrics.metric.TaskMetric`.
The image-label kinds' metrics are in :mod:`~mtdsl.train.metrics.labels`, detect's in
:mod:`~mtdsl.train.metrics.detection`, segment's in :mod:`~mtdsl.train.metrics.segmentation`;
each kind's folder registers its own in :data:`~mtdsl.train.metrics.metric.METRICS`, which
loads them all on first use::

    >>> import torch
    >>> metric = metric_for("binary", 1)
    >>> metric.update(torch.tensor([2.0, -1.0, 3.0, -2.0]), torch.tensor([1.0, 0.0, 0.0, 0.0]))
    >>> metric.compute()["balanced_accuracy"]  # TPR 1/1, TNR 2/3
    0.8333333333333333

A metric whose denominator is zero is ``nan``, so every ``compute()`` of a kind has
the same keys; :func:`~mtdsl.train.metrics.selection.mean_main` skips ``nan`` tasks.
"""

from __future__ import annotations

from collections.abc import Sequence

from mtdsl.errors import did_you_mean, listing
from mtdsl.train.metrics.metric import METRICS, TaskMetric

__all__ = ["metric_for"]


def metric_for(kind: str, num_outputs: int, class_names: Sequence[str] | None = None) -> TaskMetric:
    """A fresh metric for a task of ``kind`` whose head has ``num_outputs`` logits (or classes).

    Raises:
        ValueError: no metric is registered for ``kind``.
    """
    if kind not in METRICS:
        hint = did_you_mean(kind, METRICS) or "register one with @register_metric"
        raise ValueError(f"no metric for task kind '{kind}'; known kinds: {listing(METRICS)}; {hint}")
    return METRICS[kind](num_outputs, class_names)
