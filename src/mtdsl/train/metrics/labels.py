"""Streaming evaluation metrics per task, registered by task kind.

Each metric accumulates counts (a confusion matrix or per-label true/false
positive/negative counts), never the outputs themselves, so its memory does not
grow with the evaluation set and several ``update`` calls give exactly what one
call over the concatenated batch gives::

    >>> metric = metric_for("binary", 1)
    >>> metric.update(torch.tensor([2.0, -1.0, 3.0, -2.0]), torch.tensor([1.0, 0.0, 0.0, 0.0]))
    >>> metric.compute()["balanced_accuracy"]  # TPR 1/1, TNR 2/3
    0.8333333333333333

A metric whose denominator is zero (no data at all, or e.g. precision with no
predicted positives) is reported as ``nan`` rather than raising or being left
out, so every ``compute()`` of a kind has the same keys. ``mean_main`` skips
``nan`` tasks.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch

from mtdsl.errors import did_you_mean, listing

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
    """

    main: str

    def __init__(self, num_outputs: int, class_names: Sequence[str] | None = None) -> None:
        self.num_outputs = num_outputs
        self.class_names = tuple(class_names) if class_names is not None else tuple(map(str, range(num_outputs)))
        self.reset()

    @abstractmethod
    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one batch of logits and their targets to the counts."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """Every metric of the data seen since the last ``reset``; ``nan`` where undefined."""

    @abstractmethod
    def reset(self) -> None:
        """Forget all counts."""


METRICS: dict[str, type[TaskMetric]] = {}


def register_metric(kind: str) -> Callable[[type[TaskMetric]], type[TaskMetric]]:
    """Class decorator: register a metric under the task kind it evaluates."""

    def decorate(cls: type[TaskMetric]) -> type[TaskMetric]:
        METRICS[kind] = cls
        return cls

    return decorate


def metric_for(kind: str, num_outputs: int, class_names: Sequence[str] | None = None) -> TaskMetric:
    """A fresh metric for a task of ``kind`` whose head has ``num_outputs`` logits (or classes).

    Raises:
        ValueError: no metric is registered for ``kind``.
    """
    if kind not in METRICS:
        hint = did_you_mean(kind, METRICS) or "register one with @register_metric"
        raise ValueError(f"no metric for task kind '{kind}'; known kinds: {listing(METRICS)}; {hint}")
    return METRICS[kind](num_outputs, class_names)


@register_metric("classify")
class ClassifyMetric(TaskMetric):
    """Single-label classification from ``(N, C)`` logits and ``(N,)`` int64 class targets.

    Reports ``accuracy`` (main), ``balanced_accuracy`` (mean recall over the
    classes that occur in the targets) and, when ``C > 5``, ``top5``.
    """

    main = "accuracy"
    top_k = 5

    def reset(self) -> None:
        # confusion[target, prediction]
        self.confusion = torch.zeros(self.num_outputs, self.num_outputs, dtype=torch.int64)
        self.top_k_hits = 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        classes = self.num_outputs
        outputs = outputs.detach().reshape(-1, classes)
        targets = targets.detach().reshape(-1).long()
        if targets.numel() == 0:
            return
        low, high = int(targets.min()), int(targets.max())
        if low < 0 or high >= classes:
            raise ValueError(f"class targets must lie in [0, {classes}), got values in [{low}, {high}]")
        predictions = outputs.argmax(dim=1)
        counts = torch.bincount(targets * classes + predictions, minlength=classes * classes)
        self.confusion += counts.reshape(classes, classes).cpu()
        if classes > self.top_k:
            top = outputs.topk(self.top_k, dim=1).indices
            self.top_k_hits += int((top == targets[:, None]).any(dim=1).sum())

    def compute(self) -> dict[str, float]:
        total = self.confusion.sum()
        correct = self.confusion.diagonal()
        support = self.confusion.sum(dim=1)
        present = support > 0
        results = {
            "accuracy": _ratio(correct.sum(), total),
            "balanced_accuracy": _mean(correct[present].double() / support[present]),
        }
        if self.num_outputs > self.top_k:
            results["top5"] = _ratio(self.top_k_hits, total)
        return results


@register_metric("binary")
class BinaryMetric(TaskMetric):
    """Yes/no from ``(N, 1)`` or ``(N,)`` logits (``> 0`` means yes) and ``(N,)`` 0/1 targets.

    Reports ``accuracy``, ``balanced_accuracy`` (main; mean of TPR and TNR, or
    the one of them that is defined when the targets hold a single class),
    ``precision`` and ``recall``.
    """

    main = "balanced_accuracy"

    def reset(self) -> None:
        self.tp = self.fp = self.tn = self.fn = 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        predicted = outputs.detach().reshape(-1) > 0
        actual = targets.detach().reshape(-1) > 0.5
        self.tp += int((predicted & actual).sum())
        self.fp += int((predicted & ~actual).sum())
        self.tn += int((~predicted & ~actual).sum())
        self.fn += int((~predicted & actual).sum())

    def compute(self) -> dict[str, float]:
        tpr = _ratio(self.tp, self.tp + self.fn)
        tnr = _ratio(self.tn, self.tn + self.fp)
        defined = [rate for rate in (tpr, tnr) if not math.isnan(rate)]
        return {
            "accuracy": _ratio(self.tp + self.tn, self.tp + self.fp + self.tn + self.fn),
            "balanced_accuracy": sum(defined) / len(defined) if defined else NAN,
            "precision": _ratio(self.tp, self.tp + self.fp),
            "recall": tpr,
        }


@register_metric("multilabel")
class MultilabelMetric(TaskMetric):
    """Independent yes/no per label from ``(N, C)`` logits and ``(N, C)`` 0/1 targets.

    Reports ``accuracy`` (mean over labels of per-label accuracy),
    ``balanced_accuracy`` (main; mean over the labels whose targets hold both
    positives and negatives of ``(TPR + TNR) / 2``) and micro-averaged ``f1``.
    """

    main = "balanced_accuracy"

    def reset(self) -> None:
        zeros = torch.zeros(self.num_outputs, dtype=torch.int64)
        self.tp, self.fp, self.tn, self.fn = zeros.clone(), zeros.clone(), zeros.clone(), zeros.clone()

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        predicted = outputs.detach().reshape(-1, self.num_outputs) > 0
        actual = targets.detach().reshape(-1, self.num_outputs) > 0.5
        self.tp += (predicted & actual).sum(dim=0).cpu()
        self.fp += (predicted & ~actual).sum(dim=0).cpu()
        self.tn += (~predicted & ~actual).sum(dim=0).cpu()
        self.fn += (~predicted & actual).sum(dim=0).cpu()

    def compute(self) -> dict[str, float]:
        positives, negatives = self.tp + self.fn, self.tn + self.fp
        both = (positives > 0) & (negatives > 0)
        balanced = (self.tp[both] / positives[both] + self.tn[both] / negatives[both]) / 2
        tp = self.tp.sum()
        return {
            "accuracy": _ratio(tp + self.tn.sum(), (positives + negatives).sum()),
            "balanced_accuracy": _mean(balanced),
            "f1": _ratio(2 * tp, 2 * tp + self.fp.sum() + self.fn.sum()),
        }


def mean_main(results: dict[str, dict[str, float]], mains: dict[str, str]) -> float:
    """The mean over tasks of each task's main metric: the model-selection score (thesis §6.3).

    Tasks whose main metric is ``nan`` (no evaluation data) are left out of the
    mean; the result is ``nan`` only when every task's is.

    Args:
        results: ``{task: {metric: value}}`` as returned by each task's ``compute()``.
        mains: ``{task: main metric name}``; its keys are the tasks averaged over.

    Raises:
        KeyError: a task in ``mains`` has no result or lacks its main metric.
    """
    values = []
    for task, main in mains.items():
        if main not in results.get(task, {}):
            raise KeyError(f"task '{task}' has no '{main}' result; results hold: {listing(results.get(task, results))}")
        values.append(results[task][main])
    defined = [value for value in values if not math.isnan(value)]
    return sum(defined) / len(defined) if defined else NAN


# The detect and segment metrics live beside the box and mask code; importing them registers them.
from mtdsl.train.metrics import dense as _dense_metrics  # noqa: E402, F401
