"""Metrics of the image-label kinds: classify, binary and multilabel (each kind's folder registers its own).

Each accumulates counts (a confusion matrix or per-label true/false
positive/negative counts), never the outputs themselves, so its memory does not
grow with the evaluation set and several ``update`` calls give exactly what one
call over the concatenated batch gives::

    >>> metric = BinaryMetric(1)
    >>> metric.update(torch.tensor([2.0, -1.0, 3.0, -2.0]), torch.tensor([1.0, 0.0, 0.0, 0.0]))
    >>> metric.compute()["balanced_accuracy"]  # TPR 1/1, TNR 2/3
    0.8333333333333333
"""

from __future__ import annotations

import math

import torch

from mtdsl.train.data.labels import IGNORED_CLASS
from mtdsl.train.metrics.metric import NAN, TaskMetric, _mean, _ratio

__all__ = ["BinaryMetric", "ClassifyMetric", "MultilabelMetric"]


class ClassifyMetric(TaskMetric):
    """Single-label classification from ``(N, C)`` logits and ``(N,)`` int64 class targets.

    A target of -100 is unknown (a manifest's ``unknown`` cell) and is not counted.

    Reports ``accuracy`` (main), ``balanced_accuracy`` (mean recall over the
    classes that occur in the targets) and, when ``C > 5``, ``top5``.
    """

    main = "accuracy"
    accumulated = ("confusion", "top_k_hits")
    top_k = 5

    def reset(self) -> None:
        # confusion[target, prediction]
        self.confusion = torch.zeros(self.num_outputs, self.num_outputs, dtype=torch.int64)
        self.top_k_hits = 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        classes = self.num_outputs
        outputs = outputs.detach().reshape(-1, classes)
        targets = targets.detach().reshape(-1).long()
        known = targets != IGNORED_CLASS
        outputs, targets = outputs[known], targets[known]
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


class BinaryMetric(TaskMetric):
    """Yes/no from ``(N, 1)`` or ``(N,)`` logits (``> 0`` means yes) and ``(N,)`` 0/1 targets.

    A nan target is unknown (the image's dataset does not say) and is not counted.

    Reports ``accuracy``, ``balanced_accuracy`` (main; mean of TPR and TNR, or
    the one of them that is defined when the targets hold a single class),
    ``precision`` and ``recall``.
    """

    main = "balanced_accuracy"
    accumulated = ("tp", "fp", "tn", "fn")

    def reset(self) -> None:
        self.tp = self.fp = self.tn = self.fn = 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        targets = targets.detach().reshape(-1)
        known = ~torch.isnan(targets)  # an unknown (nan) target is neither right nor wrong
        predicted = outputs.detach().reshape(-1) > 0
        actual = targets > 0.5
        self.tp += int((predicted & actual & known).sum())
        self.fp += int((predicted & ~actual & known).sum())
        self.tn += int((~predicted & ~actual & known).sum())
        self.fn += int((~predicted & actual & known).sum())

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


class MultilabelMetric(TaskMetric):
    """Independent yes/no per label from ``(N, C)`` logits and ``(N, C)`` 0/1 targets.

    A nan target is unknown (the image's dataset does not say) and is not counted.

    Reports ``accuracy`` (mean over labels of per-label accuracy),
    ``balanced_accuracy`` (main; mean over the labels whose targets hold both
    positives and negatives of ``(TPR + TNR) / 2``) and micro-averaged ``f1``.
    """

    main = "balanced_accuracy"
    accumulated = ("tp", "fp", "tn", "fn")

    def reset(self) -> None:
        zeros = torch.zeros(self.num_outputs, dtype=torch.int64)
        self.tp, self.fp, self.tn, self.fn = zeros.clone(), zeros.clone(), zeros.clone(), zeros.clone()

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        targets = targets.detach().reshape(-1, self.num_outputs)
        known = ~torch.isnan(targets)  # an unknown (nan) target is neither right nor wrong
        predicted = outputs.detach().reshape(-1, self.num_outputs) > 0
        actual = targets > 0.5
        self.tp += (predicted & actual & known).sum(dim=0).cpu()
        self.fp += (predicted & ~actual & known).sum(dim=0).cpu()
        self.tn += (~predicted & ~actual & known).sum(dim=0).cpu()
        self.fn += (~predicted & actual & known).sum(dim=0).cpu()

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
