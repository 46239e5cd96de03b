"""The metric contract: a :class:`TaskMetric` counts one task's evaluation batch by batch; kinds register.

A metric whose denominator is zero (no data at all, or e.g. precision with no
predicted positives) is reported as ``nan`` rather than raising or being left
out, so every ``compute()`` of a kind has the same keys.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch

from mtdsl.kinds.registry import KindTable

NAN = float("nan")


def _ratio(numerator: torch.Tensor | float, denominator: torch.Tensor | float) -> float:
    """``numerator / denominator`` as a float, ``nan`` when the denominator is zero."""
    denominator = float(denominator)
    return float(numerator) / denominator if denominator else NAN


def _mean(values: torch.Tensor) -> float:
    """Mean of a 1-D float tensor, ``nan`` when it is empty."""
    return float(values.double().mean()) if values.numel() else NAN


class TaskMetric(ABC):
    """Counts for one task's evaluation, accumulated batch by batch.

    Attributes:
        main: the name of the metric used for model selection; always a key of ``compute()``.
        accumulated: the attributes ``reset`` sets and ``update`` adds to; :meth:`merge` adds them up.
    """

    main: str
    accumulated: tuple[str, ...]

    def __init__(self, num_outputs: int, class_names: Sequence[str] | None = None) -> None:
        self.num_outputs = num_outputs
        self.class_names = tuple(class_names) if class_names is not None else tuple(map(str, range(num_outputs)))
        self.reset()

    @abstractmethod
    def update(self, outputs: Any, targets: Any) -> None:
        """Add one batch of outputs and their targets to the counts (tensors; a detector's are per-image dicts)."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """Every metric of the data seen since the last ``reset``; ``nan`` where undefined."""

    @abstractmethod
    def reset(self) -> None:
        """Forget all counts."""

    def merge(self, other: TaskMetric) -> None:
        """Add ``other``'s counts to these: the same task evaluated on another rank's share of the split."""
        for name in self.accumulated:
            setattr(self, name, getattr(self, name) + getattr(other, name))


#: The metric of each task kind, registered from the kind's folder (``mtdsl/kinds/<kind>/train.py``).
METRICS: KindTable[type[TaskMetric]] = KindTable("metric", loads="mtdsl.train.kinds")


def register_metric(kind: str) -> Callable[[type[TaskMetric]], type[TaskMetric]]:
    """Class decorator: register a metric under the task kind it evaluates."""
    return METRICS.register(kind)
