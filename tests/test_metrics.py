"""Streaming task metrics: hand-computed values, streaming equivalence, edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from mtdsl.train.metrics import metric_for
from mtdsl.train.metrics.metric import METRICS
from mtdsl.train.metrics.selection import mean_main

#: The counting metrics of classification heads; detect and segment metrics are tested in test_dense_metrics.py.
CLASSIFYING = sorted(kind for kind in METRICS if kind in ("classify", "binary", "multilabel"))


def computed(kind: str, num_outputs: int, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    metric = metric_for(kind, num_outputs)
    metric.update(outputs, targets)
    return metric.compute()


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def perfect(kind: str, generator: torch.Generator) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Logits that get every one of 12 examples right, and their targets (both classes of every label)."""
    if kind == "classify":
        targets = torch.arange(12) % 7
        return 7, torch.nn.functional.one_hot(targets, 7).float() * 5, targets
    if kind == "binary":
        targets = (torch.arange(12) % 2).float()
        return 1, (targets * 2 - 1).unsqueeze(1), targets
    targets = torch.randint(0, 2, (12, 4), generator=generator).float()
    targets[0], targets[1] = 0, 1
    return 4, targets * 2 - 1, targets


@pytest.mark.parametrize("kind", CLASSIFYING)
def test_perfect_predictions_score_one(kind: str) -> None:
    num_outputs, outputs, targets = perfect(kind, torch.Generator().manual_seed(0))
    results = computed(kind, num_outputs, outputs, targets)
    assert results[metric_for(kind, num_outputs).main] == 1.0
    assert all(value == 1.0 for value in results.values())


@pytest.mark.parametrize("kind", CLASSIFYING)
def test_no_data_gives_nan_for_every_metric(kind: str) -> None:
    num_outputs, outputs, targets = perfect(kind, torch.Generator().manual_seed(0))
    metric = metric_for(kind, num_outputs)
    metric.update(outputs[:0], targets[:0])
    empty = metric.compute()
    assert empty.keys() == computed(kind, num_outputs, outputs, targets).keys()
    assert all(math.isnan(value) for value in empty.values())


@pytest.mark.parametrize("kind", CLASSIFYING)
def test_streaming_equals_one_update_and_reset_forgets(kind: str) -> None:
    generator = torch.Generator().manual_seed(1)
    num_outputs = {"classify": 7, "binary": 1, "multilabel": 4}[kind]
    outputs = torch.randn(50, num_outputs, generator=generator)
    if kind == "classify":
        targets = torch.randint(0, num_outputs, (50,), generator=generator)
    else:
        targets = torch.randint(0, 2, (50, num_outputs), generator=generator).float().squeeze(1)
    whole = computed(kind, num_outputs, outputs, targets)
    metric = metric_for(kind, num_outputs)
    for start, stop in [(0, 13), (13, 13), (13, 40), (40, 50)]:
        metric.update(outputs[start:stop], targets[start:stop])
    assert same(metric.compute(), whole)
    metric.reset()
    assert all(math.isnan(value) for value in metric.compute().values())


def test_classify_confusion_case() -> None:
    targets = torch.tensor([0, 0, 0, 1, 1, 2])
    predictions = torch.tensor([0, 0, 1, 1, 2, 2])
    results = computed("classify", 3, torch.nn.functional.one_hot(predictions, 3).float(), targets)
    assert results == {"accuracy": pytest.approx(4 / 6), "balanced_accuracy": pytest.approx((2 / 3 + 1 / 2 + 1) / 3)}


def test_classify_balanced_accuracy_skips_unseen_classes() -> None:
    # class 2 never occurs in the targets: it neither counts as recall 0 nor makes nan
    results = computed("classify", 3, torch.tensor([[1.0, 0, 0], [0, 0, 1.0]]), torch.tensor([0, 1]))
    assert results["balanced_accuracy"] == 0.5


def test_top5_only_with_more_than_five_classes() -> None:
    logits = torch.arange(7.0).repeat(4, 1)  # the top five are always classes 2..6, the top one class 6
    results = computed("classify", 7, logits, torch.tensor([6, 2, 1, 0]))
    assert results["accuracy"] == 0.25
    assert results["top5"] == 0.5
    assert "top5" not in computed("classify", 5, torch.zeros(2, 5), torch.tensor([0, 1]))


def test_classify_rejects_out_of_range_targets() -> None:
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        metric_for("classify", 3).update(torch.zeros(2, 3), torch.tensor([0, 3]))


def test_binary_confusion_case() -> None:
    # predictions 1 0 1 0 1 against targets 1 0 0 0 1: TP 2, FP 1, TN 2, FN 0
    logits = torch.tensor([[2.0], [-1.0], [3.0], [-2.0], [1.0]])
    results = computed("binary", 1, logits, torch.tensor([1.0, 0, 0, 0, 1]))
    assert results == pytest.approx({"accuracy": 0.8, "balanced_accuracy": 5 / 6, "precision": 2 / 3, "recall": 1.0})


def test_binary_one_class_predictions_on_balanced_set() -> None:
    targets = torch.tensor([0.0, 1, 0, 1, 0, 1])
    results = computed("binary", 1, torch.ones(6), targets)  # (N,) logits, all "yes"
    assert results["balanced_accuracy"] == 0.5
    assert results["accuracy"] == 0.5
    assert results["recall"] == 1.0
    never_yes = computed("binary", 1, -torch.ones(6, 1), targets)
    assert never_yes["balanced_accuracy"] == 0.5
    assert math.isnan(never_yes["precision"])  # nothing predicted positive: undefined, not a crash


def test_multilabel_case() -> None:
    targets = torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    predicted = torch.tensor([[1.0, 0, 1], [0, 1, 0], [0, 1, 0], [0, 0, 0]])
    results = computed("multilabel", 3, predicted * 2 - 1, targets)
    # label 0: TP 1 FN 1 TN 2 → accuracy 3/4, balanced 3/4; label 1: all right; label 2: no positives → left out
    assert results == pytest.approx({"accuracy": 5 / 6, "balanced_accuracy": 0.875, "f1": 0.75})


def test_multilabel_without_mixed_labels_has_nan_balanced_accuracy() -> None:
    results = computed("multilabel", 2, torch.ones(3, 2), torch.ones(3, 2))
    assert results["accuracy"] == 1.0 and results["f1"] == 1.0
    assert math.isnan(results["balanced_accuracy"])


def test_unknown_kind_names_the_options() -> None:
    with pytest.raises(ValueError, match="did you mean 'classify'"):
        metric_for("clasify", 3)


def test_mean_main() -> None:
    results = {"a": {"accuracy": 0.9, "balanced_accuracy": 0.1}, "b": {"balanced_accuracy": 0.7}}
    assert mean_main(results, {"a": "accuracy", "b": "balanced_accuracy"}) == pytest.approx(0.8)
    results["c"] = {"balanced_accuracy": float("nan")}
    with_nan = {"a": "accuracy", "b": "balanced_accuracy", "c": "balanced_accuracy"}
    assert mean_main(results, with_nan) == pytest.approx(0.8)  # c has no data: left out
    assert math.isnan(mean_main(results, {"c": "balanced_accuracy"}))
    with pytest.raises(KeyError, match="'b' has no 'accuracy'"):
        mean_main(results, {"b": "accuracy"})
