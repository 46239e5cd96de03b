"""What ``mtdsl predict`` makes of a ``segment`` task's outputs, and says of them: a mask at each image's size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mtdsl.kinds.segment.kind import SEGMENT
from mtdsl.predict.predictor import DECODERS, Found, Predictor, mask_image
from mtdsl.predict.results import SUMMARIES
from mtdsl.predict.writing import DRAWN, Picture
from mtdsl.render.label_results import rounded


@DECODERS.register(SEGMENT.name)
def decode(predictor: Predictor, task: str, logits: torch.Tensor, images: list[Image.Image],
           scales: list[tuple[float, float]] | None, found: list[Found]) -> None:
    """Each image's class mask at its own size, and the share of its pixels each class has."""
    letterbox = predictor.letterbox_of(task)  # padded, or squashed (resize = squash)
    side = letterbox.size
    if tuple(logits.shape[-2:]) != (side, side):
        logits = F.interpolate(logits.float(), size=(side, side), mode="bilinear", align_corners=False)
    labels = logits.argmax(1).cpu().numpy()
    names = predictor.classes[task] or []
    for image, label, result in zip(images, labels, found):
        width, height = image.size
        fitted_w, fitted_h = letterbox.fitted(width, height)
        inside = mask_image(label[:fitted_h, :fitted_w])
        mask = np.asarray(inside.resize((width, height), Image.Resampling.NEAREST))
        result.masks[task] = mask
        result.outputs[task] = {"kind": SEGMENT.name, "mask": None, "fractions": _fractions(mask, names)}


def _fractions(mask: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    counts = np.bincount(mask.ravel().astype(np.int64), minlength=len(classes))[: len(classes)]
    return {name: rounded(count / max(mask.size, 1)) for name, count in zip(classes, counts.tolist())}


@SUMMARIES.register(SEGMENT.name)
def summary(task: str, output: dict[str, Any]) -> str:
    """The two largest classes other than the background, by their share of the pixels."""
    shares = sorted(((share, name) for name, share in output["fractions"].items()
                     if name.lower() != "background" and share > 0), reverse=True)[:2]
    return f"{task} " + (", ".join(f"{name} {share:.0%}" for share, name in shares) or "background")


@DRAWN.register(SEGMENT.name)
def draw(picture: Picture, predictor: Predictor, task: str, result: Found) -> None:
    """Its mask, when no task before it has drawn one."""
    if picture.mask_task is None and task in result.masks:
        picture.mask_task = task
