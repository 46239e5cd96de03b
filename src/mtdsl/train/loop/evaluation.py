"""Evaluation: every task's metrics on one split, and the mean used to pick the best model.

Each stream's split is run through the model once for all the stream's tasks (a joint
stream's parts each on their own split, as without joint sampling).
The model is put in eval mode and no gradients are kept. With several ranks each
evaluates its share of the split's batches; rank 0 adds up their metrics,
computes them (COCO evaluation included) over the whole split, and every rank
gets the results, so all take the same decisions (best epoch, dynamic sampling).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mtdsl.train.data.datasets import raise_if_unreadable
from mtdsl.train.data.loaders import StreamLoaders, to_device
from mtdsl.train.loop.precision import Precision
from mtdsl.train.loop.runtime import to_float
from mtdsl.train.metrics import metric_for
from mtdsl.train.metrics.metric import TaskMetric


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loaders: StreamLoaders,
    split: str,
    outputs_per_task: Mapping[str, tuple],
    precision: Precision,
    channels_last: bool = False,
    fallback: str | None = None,
    decoders: Mapping[str, Any] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Every task's metrics on ``split``.

    Args:
        outputs_per_task: per task, its kind, number of outputs and (optionally) class names.
        fallback: the split to use for tasks whose dataset lacks ``split`` (e.g. ``val`` for ``test``).
        decoders: per detect task, what turns its raw outputs into boxes
            (:class:`~mtdsl.detection.bench.DetectionSetup`); its metric scores the boxes.

    Returns:
        The metrics per task, and the name of each task's main metric.
    """
    model.eval()
    device = loaders.device
    evaluated: dict[str, TaskMetric] = {}
    for group, loader in loaders.evaluation(split, fallback):
        tasks = group.tasks
        metrics = {task: metric_for(*outputs_per_task[task]) for task in tasks}
        for batch in map(raise_if_unreadable, loader):
            loaders.skipped += batch["skipped"]
            if not len(batch["index"]):
                continue
            batch = to_device(batch, device)
            images = batch["image"].contiguous(memory_format=torch.channels_last) if channels_last else batch["image"]
            with torch.autocast(device.type, dtype=precision.dtype, enabled=precision.autocast):
                outputs = model(images, tasks=tasks)
            for task in tasks:
                output = to_float(outputs[task])
                if decoders and task in decoders:
                    output = decoders[task].detections(output)
                metrics[task].update(output, batch["targets"][task])
        evaluated.update(metrics)
    results = loaders.world.broadcast(_computed(loaders.world.gather(evaluated)))
    assert results is not None  # rank 0 computed them, and every rank now holds its copy
    return results


Results = tuple[dict[str, dict[str, float]], dict[str, str]]


def _computed(per_rank: list[dict[str, TaskMetric]] | None) -> Results | None:
    """Every task's metrics over all ranks' shares (on rank 0; ``None`` on the others)."""
    if per_rank is None:
        return None
    first, *others = per_rank
    for metrics in others:
        for task, metric in metrics.items():
            first[task].merge(metric)
    return {task: metric.compute() for task, metric in first.items()}, {task: m.main for task, m in first.items()}
