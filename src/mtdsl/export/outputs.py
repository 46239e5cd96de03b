"""What an exported model returns: one named output (or two, for detection) per task, in a fixed order.

A deployed model cannot return a dict keyed by task, so :class:`NamedOutputs`
wraps the model and returns a flat tuple whose order and names
:func:`task_outputs` decides from the spec, never from positions in the model:

==========  ===================================  =====================================================
task kind   outputs (raw)                        with ``postprocess``
==========  ===================================  =====================================================
classify    ``<task>``: logits ``(N, C)``          ``<task>``: softmax probabilities ``(N, C)``
binary      ``<task>``: logit ``(N, 1)``           ``<task>``: sigmoid probability ``(N, 1)``
detect      ``<task>.class_logits`` ``(N, A, C)``,  ``<task>.scores`` ``(N, A, C)`` (sigmoid),
            ``<task>.box_deltas`` ``(N, A, 4)``    ``<task>.boxes`` ``(N, A, 4)`` ``(x0, y0, x1, y1)`` in input pixels
segment     ``<task>``: logits ``(N, C, H, W)``    ``<task>``: softmax probabilities ``(N, C, H, W)``
keypoints   ``<task>``: logits ``(N, K, h, w)``    ``<task>.points`` ``(N, K, 2)`` ``(x, y)`` in input pixels,
                                                 ``<task>.scores`` ``(N, K)`` (sigmoid of each heatmap's peak)
==========  ===================================  =====================================================

Detection boxes are decoded against the task's anchors inside the model with
``postprocess``, and non-maximum suppression is left to the consumer, with the
thresholds the sidecar names. With ``nms`` (which implies ``postprocess``) the
model does that too (:mod:`mtdsl.export.nms`) and a detect task's outputs are
its ``M = max_detections`` best boxes: ``<task>.boxes`` ``(N, M, 4)``,
``<task>.scores`` ``(N, M)``, ``<task>.classes`` ``(N, M)`` int64 and
``<task>.count`` ``(N,)``, the number of real rows (the rest are padding:
zeros, class -1).

Each kind's folder says its own outputs (``mtdsl/kinds/<kind>/export.py``, registered in
:data:`OUTPUTS` and :data:`FINISHES`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mtdsl.detection.bench import DetectionSetup
from mtdsl.export.nms import Detections
from mtdsl.kinds.registry import KindTable


@dataclass(frozen=True)
class Output:
    """One named output of an exported model."""

    name: str
    task: str
    shape: tuple[str | int, ...]
    meaning: str


@dataclass(frozen=True)
class OutputPlan:
    """What every task's outputs depend on besides its own classes.

    Attributes:
        image_size: the input's ``(height, width)``.
        postprocess: probabilities (and decoded boxes) instead of logits.
        anchors: the anchor count of each detect task.
        nms: with NMS inside, each detect task's ``max_detections``; else ``None``.
    """

    image_size: tuple[int, int]
    postprocess: bool
    anchors: dict[str, int]
    nms: dict[str, int] | None = None


#: Each kind's outputs, registered from its folder (``mtdsl/kinds/<kind>/export.py``):
#: ``outputs(task, classes, plan) -> list[Output]``.
OUTPUTS: KindTable[Callable[[str, int, OutputPlan], list[Output]]] = KindTable(
    "export outputs", loads="mtdsl.export.kinds")
#: What :class:`NamedOutputs` makes of each kind's raw output, registered beside its :data:`OUTPUTS`:
#: ``finish(named_outputs, task, output) -> tensors``, in the order :data:`OUTPUTS` names them.
FINISHES: KindTable[Callable[[Any, str, Any], Sequence[torch.Tensor]]] = KindTable(
    "export finish", loads="mtdsl.export.kinds")


def task_outputs(kinds: dict[str, str], num_outputs: dict[str, int], image_size: tuple[int, int],
                 postprocess: bool, anchors: dict[str, int], nms: dict[str, int] | None = None) -> list[Output]:
    """The outputs of ``kinds``' tasks, in the order given (``anchors``: the anchor count of each detect task;
    ``nms``: with NMS inside, each detect task's ``max_detections``)."""
    plan = OutputPlan(image_size, postprocess, anchors, nms)
    return [output for task, kind in kinds.items() for output in OUTPUTS[kind](task, num_outputs[task], plan)]


def softmax_finish(module: NamedOutputs, task: str, output: torch.Tensor) -> tuple[torch.Tensor]:
    """The logits, or with ``postprocess`` their softmax over the classes (dimension 1)."""
    return (output.softmax(dim=1),) if module.postprocess else (output,)


def sigmoid_finish(module: NamedOutputs, task: str, output: torch.Tensor) -> tuple[torch.Tensor]:
    """The logits, or with ``postprocess`` their sigmoid."""
    return (output.sigmoid(),) if module.postprocess else (output,)


class NamedOutputs(nn.Module):
    """``model(x, tasks)`` as a flat tuple in :func:`task_outputs` order, optionally post-processed."""

    def __init__(self, model: nn.Module, kinds: dict[str, str], postprocess: bool,
                 detection: dict[str, DetectionSetup], nms: bool = False,
                 image_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.model = model
        #: the input's ``(height, width)``, for outputs decoded into input pixels (a task's points)
        self.image_size = image_size
        self.kinds = dict(kinds)
        self.finishes = {task: FINISHES[kind] for task, kind in kinds.items()}  # looked up once, before tracing
        self.postprocess = postprocess or nms
        self.detections = nn.ModuleDict({task: Detections(detection[task]) for task in kinds
                                         if task in detection}) if nms else None
        self.anchor_tasks = [task for task in kinds if task in detection]
        for index, task in enumerate(self.anchor_tasks):  # buffers, so they move with the model
            self.register_buffer(f"anchors_{index}", detection[task].anchor_boxes(), persistent=False)

    def anchors(self, task: str) -> torch.Tensor:
        return getattr(self, f"anchors_{self.anchor_tasks.index(task)}")

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(image, tasks=list(self.kinds))
        flat: list[torch.Tensor] = []
        for task, finish in self.finishes.items():
            flat += finish(self, task, outputs[task])
        return tuple(flat)
