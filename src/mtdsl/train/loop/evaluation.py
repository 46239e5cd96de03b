"""Evaluation: every task's metrics on one split, and the mean used to pick the best model.

Each stream's split is run through the model once for all the stream's tasks.
The model is put in eval mode and no gradients are kept.
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
                output = to_float(outputs[task])
                if decoders and task in decoders:
                    output = decoders[task].detections(output)
                metrics[task].update(output, batch["targets"][task])
        for task, metric in metrics.items():
            results[task] = metric.compute()
            mains[task] = metric.main
    return results, mains
