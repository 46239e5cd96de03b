"""A few test images with the model's boxes and masks drawn on them, for the run folder.

Numbers say how good a detector is; pictures say how it fails. After training,
:func:`write_prediction_images` draws the first images of each stream that has
a detect or segment task (test split, else val) with every task's output, one
grid per stream, in ``predictions/<dataset>.png`` (``<dataset>.<tasks>.png`` when
several such streams read one dataset: tasks with their own ``augment``). What each task adds to a picture is its kind's
to say (:data:`SHOWN`, registered from ``mtdsl/kinds/<kind>/train.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mtdsl.kinds import TASK_KINDS
from mtdsl.kinds.registry import KindTable
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


@dataclass
class Shown:
    """One picture's drawing in the making: ``draw_predictions``' keyword arguments, and its captions.

    Attributes:
        index: the image's position in the batch.
        zoom: how much the image is enlarged (boxes and masks are scaled by it).
        image_size: the network input's ``(height, width)`` (what points are decoded against).
    """

    index: int
    zoom: int
    drawing: dict[str, Any] = field(default_factory=dict)
    captions: list[str] = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)


#: What each kind adds to a picture from its batch output, registered from its folder
#: (``mtdsl/kinds/<kind>/train.py``): ``show(picture, labels, output, decoder)``; ``decoder`` is a
#: detect task's :class:`~mtdsl.detection.setup.DetectionSetup`, else ``None``.
SHOWN: KindTable[Callable[[Shown, TaskLabels, Any, Any], None]] = KindTable("showcase drawing",
                                                                          loads="mtdsl.train.kinds")


def caption(picture: Shown, labels: TaskLabels, output: Any, decoder: Any) -> None:
    """An image-label task's result in the picture's title."""
    picture.captions.append(_caption(labels, output[picture.index]))


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
    drawn_streams = [stream for stream, _ in loaders.groups if any(labels[task].dense for task in stream.tasks)]
    for index, (stream, splits) in enumerate(loaders.groups):
        split = loaders.split_for(index, "test", fallback="val")
        if split is None or stream not in drawn_streams:
            continue
        dataset = splits[split]
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
            picture = Shown(n, zoom, {"title": None}, image_size=(images.shape[-2], images.shape[-1]))
            for task in stream.tasks:
                SHOWN[labels[task].kind](picture, labels[task], to_float(outputs[task]), decoders.get(task))
            picture.drawing["title"] = " · ".join(picture.captions) or None
            pixels = _pixels(images[n], mean, std).repeat(zoom, axis=0).repeat(zoom, axis=1)
            drawn.append(draw_predictions(pixels, **picture.drawing))
        shared = sum(other.dataset == stream.dataset for other in drawn_streams) > 1
        name = f"{stream.dataset}.{stream.label}" if shared else stream.dataset
        written.append(save_prediction_grid(drawn, out_dir / f"{name}.png"))
    return written
