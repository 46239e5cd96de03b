"""The model-selection score: the mean over tasks of each task's main metric.

>>> mean_main({"shape": {"accuracy": 0.9}, "large": {"balanced_accuracy": float("nan")}},
...           {"shape": "accuracy", "large": "balanced_accuracy"})
0.9
"""

from __future__ import annotations

import math

from mtdsl.errors import listing
from mtdsl.train.metrics.metric import NAN


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
