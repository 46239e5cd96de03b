"""The model run: a batch of original images through the model, each task seeing them as it did in training.

Detect and segment tasks, and the image-label tasks trained in the same batches as one,
get the letterbox; image-label tasks trained on their own get the resize and centre crop
they were evaluated with; a dataset's ``resize`` changes either, as it did in training.
Boxes come back in original-image pixels (a detect task with ``crops`` labels each box by
running its crop through the same model), masks at the original size."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import torch
from PIL import Image

from mtdsl.kinds import TASK_KINDS
from mtdsl.kinds.registry import KindTable
from mtdsl.render.label_results import label_output
from mtdsl.spec.data import resize_policy
from mtdsl.spec.document import Spec

if TYPE_CHECKING:
    from mtdsl.train.data.letterbox import Letterbox

__all__ = ["DECODERS", "LETTERBOX", "RESIZE", "SQUASH", "Found", "Predictor", "decode_labels", "mask_image",
           "task_views"]

#: Preprocessing views: ``letterbox`` keeps the aspect ratio (padding bottom/right), ``resize``
#: is the resize + centre crop of image-label evaluation (``resize = crop``), ``squash`` stretches
#: the picture to the square (a letterbox without padding).
LETTERBOX, RESIZE, SQUASH = "letterbox", "resize", "squash"


def mask_image(mask: np.ndarray) -> Image.Image:
    """A class-index mask as a PNG-able image: 8-bit up to 256 classes, 16-bit beyond."""
    return Image.fromarray(mask.astype(np.uint8 if mask.max(initial=0) < 256 else np.uint16))


@dataclass
class Found:
    """One image's raw results, before anything is written."""

    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)


#: How each kind turns a batch's outputs into every image's :class:`Found` results, registered from its
#: folder (``mtdsl/kinds/<kind>/predict.py``): ``decode(predictor, task, outputs, images, scales, found)``,
#: where ``scales`` are the letterbox's per image (``None`` for the resize view).
Decoder = Callable[["Predictor", str, Any, "list[Image.Image]", "list[tuple[float, float]] | None", "list[Found]"],
                   None]
DECODERS: KindTable[Decoder] = KindTable("prediction decoder", loads="mtdsl.predict.kinds")


def decode_labels(predictor: Predictor, task: str, outputs: Any, images: list[Image.Image],
                  scales: list[tuple[float, float]] | None, found: list[Found]) -> None:
    """An image-label task's result for each image, as its kind words it (:func:`label_output`)."""
    for result, logits in zip(found, outputs):
        result.outputs[task] = label_output(predictor.kinds[task], predictor.classes[task], logits)


def task_views(spec: Spec, tasks: Sequence[str]) -> dict[str, list[str]]:
    """Which preprocessing each task gets: as its training batches had it, its stream's ``resize``.

    By default detect and segment tasks are letterboxed; so is an image-label task trained in the
    same batches (the same stream) as one of them. Other image-label tasks get the resize and
    centre crop they were evaluated with. A dataset's ``resize`` says otherwise.
    """
    view_of = {}
    for stream in spec.streams:
        dense = any(TASK_KINDS[spec.model.tasks[t].kind].dense for t in stream.tasks)
        policy = resize_policy(spec.datasets[stream.datasets[0]], dense)
        view_of.update(dict.fromkeys(stream.tasks, RESIZE if policy == "crop" else policy))
    views: dict[str, list[str]] = {LETTERBOX: [], RESIZE: [], SQUASH: []}
    for task in tasks:
        views[view_of[task]].append(task)
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
        self.squash = Letterbox(height, tuple(mean), tuple(std), train=False, squash=True)
        resize = pretrained_resize(first_backbone.model, first_backbone.pretrained)
        self.resize = ImageTransform((height, width), tuple(mean), tuple(std), train=False, resize=resize)
        self.input_size = (width, height)
        self.views = task_views(spec, tasks)
        self._squashed = frozenset(self.views.get(SQUASH, ()))
        setups = detection_setups(spec, graph)
        self.setups = {t: setups[t] for t in tasks if t in setups}
        self.crops = {t: list(spec.model.tasks[t].crops) for t in self.setups if spec.model.tasks[t].crops}

    def letterbox_of(self, task: str) -> Letterbox:
        """The letterbox ``task``'s images went through (squashed or padded), to map its outputs back."""
        return self.squash if task in self._squashed else self.letterbox

    def forward(self, tensors: list[torch.Tensor], tasks: list[str]) -> dict[str, Any]:
        """The model's outputs for ``tasks`` on a batch of preprocessed images (a detect task's crops run here too)."""
        return self.model(torch.stack(tensors).to(self.device), tasks=tasks)

    @torch.no_grad()
    def __call__(self, images: list[Image.Image]) -> list[Found]:
        found = [Found() for _ in images]
        for view, tasks in self.views.items():
            if view == RESIZE:
                outputs = self.forward([self.resize(image, 0) for image in images], tasks)
                scales = None
            else:
                boxed = [(self.squash if view == SQUASH else self.letterbox)(image, 0) for image in images]
                outputs = self.forward([b.image for b in boxed], tasks)
                scales = [b.scale for b in boxed]
            for task in tasks:
                DECODERS[self.kinds[task]](self, task, outputs[task], images, scales, found)
        return found
