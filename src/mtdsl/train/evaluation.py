"""Evaluation: every task's metrics on one split, and the mean used to pick the best model.

Each stream's split is run through the model once for all the stream's tasks.
The model is put in eval mode and no gradients are kept.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mtdsl.train.data import raise_if_unreadable
from mtdsl.train.loaders import StreamLoaders, to_device
from mtdsl.train.metrics import metric_for
from mtdsl.train.precision import Precision


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loaders: StreamLoaders,
    split: str,
    outputs_per_task: Mapping[str, tuple[str, int]],
    precision: Precision,
    channels_last: bool = False,
    fallback: str | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Every task's metrics on ``split``.

    Args:
        outputs_per_task: per task, its kind and number of outputs.
        fallback: the split to use for tasks whose dataset lacks ``split`` (e.g. ``val`` for ``test``).

    Returns:
        The metrics per task, and the name of each task's main metric.
    """
    model.eval()
    device = loaders.device
    results: dict[str, dict[str, float]] = {}
    mains: dict[str, str] = {}
    for index, loader in loaders.evaluation(split, fallback):
        tasks = loaders.streams[index].tasks
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
                metrics[task].update(outputs[task].float(), batch["targets"][task])
        for task, metric in metrics.items():
            results[task] = metric.compute()
            mains[task] = metric.main
    return results, mains
