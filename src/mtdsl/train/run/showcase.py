"""A few test images with the model's boxes and masks drawn on them, for the run folder.

Numbers say how good a detector is; pictures say how it fails. After training,
:func:`write_prediction_images` draws the first images of each stream that has
a detect or segment task (test split, else val) with every task's output, one
grid per stream, in ``predictions/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mtdsl.kinds import TASK_KINDS
from mtdsl.render.label_results import label_output, label_text
from mtdsl.train.data.datasets import collate, raise_if_unreadable
from mtdsl.train.data.loaders import StreamLoaders, to_device
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.loop.precision import Precision
from mtdsl.train.loop.runtime import to_float

#: Boxes drawn: confident ones only (evaluation keeps every box over the head's score_threshold).
DRAWN_SCORE = 0.3
#: Small images are drawn enlarged so that labels stay legible.
DRAWN_SIDE = 256


def _pixels(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalised ``(3, H, W)`` image back to ``(H, W, 3)`` uint8."""
    restored = image.float().cpu() * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    return (restored.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def _caption(labels: TaskLabels, output: torch.Tensor) -> str:
    """``"shape: circle 0.54"``: an image-label task's result, worded as ``mtdsl predict`` words it."""
    names = labels.classes if isinstance(labels.classes, tuple) else tuple(map(str, range(output.numel())))
    text = label_text(labels.task, label_output(labels.kind, names, output))
    return text if TASK_KINDS[labels.kind].yes_no else f"{labels.task}: {text}"  # a yes/no text names the task


@torch.no_grad()
def write_prediction_images(
    model: nn.Module,
    loaders: StreamLoaders,
    labels: Mapping[str, TaskLabels],
    decoders: Mapping[str, Any],
    out_dir: Path,
    precision: Precision,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    count: int = 8,
) -> list[Path]:
    """Draw ``count`` images per dense stream with every task's prediction; returns the PNGs written.

    The images are spread evenly over the stream's test split (else val), so a
    stream of joined datasets shows images of each.
    """
    from mtdsl.render.predictions import draw_predictions, save_prediction_grid

    model.eval()
    written = []
    for index, stream in enumerate(loaders.streams):
        split = loaders.split_for(index, "test", fallback="val")
        if split is None or not any(labels[task].dense for task in stream.tasks):
            continue
        dataset = loaders.splits[index][split]
        picked = dict.fromkeys(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int).tolist())
        batch = raise_if_unreadable(collate([dataset[(i, 0)] for i in picked]))
        if not len(batch["index"]):
            continue
        batch = to_device(batch, loaders.device)
        images = batch["image"]
        with torch.autocast(loaders.device.type, dtype=precision.dtype, enabled=precision.autocast):
            outputs = model(images, tasks=stream.tasks)
        drawn = []
        zoom = max(1, DRAWN_SIDE // max(images.shape[-2:]))
        for n in range(len(images)):
            drawing: dict[str, Any] = {"title": None}
            captions = []
            for task in stream.tasks:
                task_labels = labels[task]
                names = task_labels.classes if isinstance(task_labels.classes, tuple) else None
                output = to_float(outputs[task])
                if task_labels.learns_from == "boxes":
                    found = decoders[task].detections(tuple(part[n : n + 1] for part in output))[0]
                    sure = found["scores"] >= DRAWN_SCORE
                    drawing.update(boxes=found["boxes"][sure] * zoom, scores=found["scores"][sure],
                                   classes=found["classes"][sure], class_names=names)
                elif task_labels.learns_from == "masks":
                    mask = output[n].argmax(0)
                    drawing.update(mask=mask.repeat_interleave(zoom, 0).repeat_interleave(zoom, 1), mask_names=names)
                else:
                    captions.append(_caption(task_labels, output[n]))
            drawing["title"] = " · ".join(captions) or None
            pixels = _pixels(images[n], mean, std).repeat(zoom, axis=0).repeat(zoom, axis=1)
            drawn.append(draw_predictions(pixels, **drawing))
        written.append(save_prediction_grid(drawn, out_dir / f"{stream.dataset}.png"))
    return written
