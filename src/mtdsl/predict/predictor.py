"""The model run: a batch of original images through the model, each task seeing them as it did in training.

Detect and segment tasks, and the image-label tasks trained in the same batches as one,
get the letterbox; image-label tasks trained on their own get the resize and centre crop
they were evaluated with. Boxes come back in original-image pixels (a detect task with
``crops`` labels each box by running its crop through the same model), masks at the
original size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mtdsl.render.label_results import label_output, rounded
from mtdsl.spec.document import Spec
from mtdsl.train.data.dense import unletterbox_boxes
from mtdsl.train.data.tasks import DENSE_KINDS, LABEL_KINDS

__all__ = ["LETTERBOX", "RESIZE", "Found", "Predictor", "mask_image", "task_views"]

#: Preprocessing views: ``letterbox`` keeps the aspect ratio (padding bottom/right), ``resize``
#: is the resize + centre crop of image-label evaluation.
LETTERBOX, RESIZE = "letterbox", "resize"


def _crop_result(output: dict[str, Any]) -> dict[str, Any]:
    """A crop task's result without the whole-image extras (kind, top classes)."""
    return {key: value for key, value in output.items() if key not in ("kind", "top")}


def _fractions(mask: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    counts = np.bincount(mask.ravel().astype(np.int64), minlength=len(classes))[: len(classes)]
    return {name: rounded(count / max(mask.size, 1)) for name, count in zip(classes, counts.tolist())}


def mask_image(mask: np.ndarray) -> Image.Image:
    """A class-index mask as a PNG-able image: 8-bit up to 256 classes, 16-bit beyond."""
    return Image.fromarray(mask.astype(np.uint8 if mask.max(initial=0) < 256 else np.uint16))


@dataclass
class Found:
    """One image's raw results, before anything is written."""

    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)


def task_views(spec: Spec, tasks: Sequence[str]) -> dict[str, list[str]]:
    """Which preprocessing each task gets: as its training batches had it.

    Detect and segment tasks are letterboxed; so is an image-label task trained in the same
    batches (the same stream) as one of them. Other image-label tasks get the resize and
    centre crop they were evaluated with.
    """
    dense_streams = {
        task for stream in spec.streams
        if any(spec.model.tasks[t].kind in DENSE_KINDS for t in stream.tasks) for task in stream.tasks
    }
    views: dict[str, list[str]] = {LETTERBOX: [], RESIZE: []}
    for task in tasks:
        dense = spec.model.tasks[task].kind in DENSE_KINDS or task in dense_streams
        views[LETTERBOX if dense else RESIZE].append(task)
    return {view: names for view, names in views.items() if names}


class Predictor:
    """The model plus everything that turns a batch of original images into :class:`Found` results."""

    def __init__(self, spec: Spec, graph: nx.DiGraph, model: torch.nn.Module, tasks: list[str],
                 device: torch.device, batch_size: int) -> None:
        from mtdsl.codegen.train_source import detection_setups
        from mtdsl.train.data.letterbox import Letterbox
        from mtdsl.train.data.resize import normalization, pretrained_resize
        from mtdsl.train.data.transforms import ImageTransform

        self.spec, self.model, self.tasks, self.device, self.batch_size = spec, model, tasks, device, batch_size
        self.kinds = {name: task.kind for name, task in spec.model.tasks.items()}
        self.classes = {name: task.classes for name, task in spec.model.tasks.items()}
        height, width = spec.model.input.height, spec.model.input.width
        first_backbone = next(iter(spec.model.backbones.values()))
        mean, std = normalization(first_backbone.model)
        self.letterbox = Letterbox(height, tuple(mean), tuple(std), train=False)
        resize = pretrained_resize(first_backbone.model, first_backbone.pretrained)
        self.resize = ImageTransform((height, width), tuple(mean), tuple(std), train=False, resize=resize)
        self.input_size = (width, height)
        self.views = task_views(spec, tasks)
        setups = detection_setups(spec, graph)
        self.setups = {t: setups[t] for t in tasks if t in setups}
        self.crops = {t: list(spec.model.tasks[t].crops) for t in self.setups if spec.model.tasks[t].crops}

    def _forward(self, tensors: list[torch.Tensor], tasks: list[str]) -> dict[str, Any]:
        return self.model(torch.stack(tensors).to(self.device), tasks=tasks)

    @torch.no_grad()
    def __call__(self, images: list[Image.Image]) -> list[Found]:
        found = [Found() for _ in images]
        for view, tasks in self.views.items():
            if view == RESIZE:
                outputs = self._forward([self.resize(image, 0) for image in images], tasks)
                scales = None
            else:
                boxed = [self.letterbox(image, 0) for image in images]
                outputs = self._forward([b.image for b in boxed], tasks)
                scales = [b.scale for b in boxed]
            for task in tasks:
                kind = self.kinds[task]
                if kind in LABEL_KINDS:
                    for result, logits in zip(found, outputs[task]):
                        result.outputs[task] = label_output(kind, self.classes[task], logits)
                elif kind == "detect":
                    assert scales is not None
                    self._detect(task, outputs[task], images, scales, found)
                elif kind == "segment":
                    self._segment(task, outputs[task], images, found)
        return found

    def _detect(self, task: str, outputs: Any, images: list[Image.Image], scales: list[tuple[float, float]],
                found: list[Found]) -> None:
        names = self.classes[task] or []
        for image, (sx, sy), detection, result in zip(images, scales, self.setups[task].detections(outputs), found):
            # The evaluation maps boxes back the same way, so detections.json scores as mtdsl's metric does.
            boxes, keep = unletterbox_boxes(detection["boxes"].float().cpu().numpy(), (sx, sy), image.size)
            scores = detection["scores"].float().cpu().numpy()[keep]
            classes = detection["classes"].cpu().numpy().astype(np.int64)[keep]
            entries = [
                {"box": [rounded(v, 2) for v in box.tolist()], "class": names[int(c)], "class_index": int(c),
                 "score": rounded(s)}
                for box, s, c in zip(boxes, scores, classes)
            ]
            if task in self.crops and entries:
                for entry, crop in zip(entries, self._classify_crops(image, boxes, self.crops[task])):
                    entry["crops"] = crop
            result.outputs[task] = {"kind": "detect", "boxes": entries}

    def _classify_crops(self, image: Image.Image, boxes: np.ndarray, tasks: list[str]) -> list[dict[str, Any]]:
        """Each box cut from the original image, resized to the input and labelled by ``tasks``."""
        from mtdsl.train.data.transforms import pixels_of

        width, height = image.size
        tensors = []
        for x0, y0, x1, y1 in boxes.tolist():
            left, top = min(math.floor(x0), width - 1), min(math.floor(y0), height - 1)
            right, bottom = max(left + 1, math.ceil(x1)), max(top + 1, math.ceil(y1))
            crop = image.crop((left, top, right, bottom)).resize(self.input_size, Image.Resampling.BILINEAR)
            tensors.append(self.resize.normalise(pixels_of(crop)))
        results: list[dict[str, Any]] = []
        for start in range(0, len(tensors), self.batch_size):
            outputs = self._forward(tensors[start:start + self.batch_size], tasks)
            for n in range(len(tensors[start:start + self.batch_size])):
                results.append({
                    t: _crop_result(label_output(self.kinds[t], self.classes[t], outputs[t][n])) for t in tasks
                })
        return results

    def _segment(self, task: str, logits: torch.Tensor, images: list[Image.Image], found: list[Found]) -> None:
        side = self.letterbox.size
        if tuple(logits.shape[-2:]) != (side, side):
            logits = F.interpolate(logits.float(), size=(side, side), mode="bilinear", align_corners=False)
        labels = logits.argmax(1).cpu().numpy()
        names = self.classes[task] or []
        for image, label, result in zip(images, labels, found):
            width, height = image.size
            fitted_w, fitted_h = self.letterbox.fitted(width, height)
            inside = mask_image(label[:fitted_h, :fitted_w])
            mask = np.asarray(inside.resize((width, height), Image.Resampling.NEAREST))
            result.masks[task] = mask
            result.outputs[task] = {"kind": "segment", "mask": None, "fractions": _fractions(mask, names)}
