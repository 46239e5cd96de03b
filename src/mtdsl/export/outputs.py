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
==========  ===================================  =====================================================

Detection boxes are decoded against the task's anchors inside the model with
``postprocess``, and non-maximum suppression is left to the consumer, with the
thresholds the sidecar names. With ``nms`` (which implies ``postprocess``) the
model does that too (:mod:`mtdsl.export.nms`) and a detect task's outputs are
its ``M = max_detections`` best boxes: ``<task>.boxes`` ``(N, M, 4)``,
``<task>.scores`` ``(N, M)``, ``<task>.classes`` ``(N, M)`` int64 and
``<task>.count`` ``(N,)``, the number of real rows (the rest are padding:
zeros, class -1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mtdsl.detection.bench import DetectionSetup
from mtdsl.detection.boxes import decode
from mtdsl.export.nms import Detections


@dataclass(frozen=True)
class Output:
    """One named output of an exported model."""

    name: str
    task: str
    shape: tuple[str | int, ...]
    meaning: str


def task_outputs(kinds: dict[str, str], num_outputs: dict[str, int], image_size: tuple[int, int],
                 postprocess: bool, anchors: dict[str, int], nms: dict[str, int] | None = None) -> list[Output]:
    """The outputs of ``kinds``' tasks, in the order given (``anchors``: the anchor count of each detect task;
    ``nms``: with NMS inside, each detect task's ``max_detections``)."""
    outputs = []
    for task, kind in kinds.items():
        classes = num_outputs[task]
        if kind == "detect":
            count = anchors[task]
            if nms is not None:
                most = nms[task]
                outputs += [
                    Output(f"{task}.boxes", task, ("N", most, 4),
                           "best boxes first, (x0, y0, x1, y1) in input pixels; rows from count on are zeros"),
                    Output(f"{task}.scores", task, ("N", most), "each box's class probability; 0 after count"),
                    Output(f"{task}.classes", task, ("N", most), "each box's class index (int64); -1 after count"),
                    Output(f"{task}.count", task, ("N",), "how many rows of each image are detections (int64)"),
                ]
            elif postprocess:
                outputs += [
                    Output(f"{task}.scores", task, ("N", count, classes), "class probabilities (sigmoid) per anchor"),
                    Output(f"{task}.boxes", task, ("N", count, 4), "boxes (x0, y0, x1, y1) in input pixels"),
                ]
            else:
                outputs += [Output(f"{task}.class_logits", task, ("N", count, classes), "class logits per anchor"),
                            Output(f"{task}.box_deltas", task, ("N", count, 4),
                                   "(dx, dy, dw, dh) against the anchors, see mtdsl.detection.boxes.decode")]
        elif kind == "segment":
            meaning = "class probabilities (softmax) per pixel" if postprocess else "class logits per pixel"
            outputs.append(Output(task, task, ("N", classes, *image_size), meaning))
        elif kind == "binary":
            outputs.append(Output(task, task, ("N", 1), "probability (sigmoid)" if postprocess else "logit"))
        else:
            meaning = "class probabilities (softmax)" if postprocess else "class logits"
            outputs.append(Output(task, task, ("N", classes), meaning))
    return outputs


class NamedOutputs(nn.Module):
    """``model(x, tasks)`` as a flat tuple in :func:`task_outputs` order, optionally post-processed."""

    def __init__(self, model: nn.Module, kinds: dict[str, str], postprocess: bool,
                 detection: dict[str, DetectionSetup], nms: bool = False) -> None:
        super().__init__()
        self.model = model
        self.kinds = dict(kinds)
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
        for task, kind in self.kinds.items():
            flat += self._task(task, kind, outputs[task])
        return tuple(flat)

    def _task(self, task: str, kind: str, output) -> Sequence[torch.Tensor]:
        if kind == "detect":
            class_logits, box_deltas = output
            if self.detections is not None:
                return self.detections[task](class_logits, box_deltas)
            if not self.postprocess:
                return class_logits, box_deltas
            return class_logits.sigmoid(), decode(box_deltas, self.anchors(task).to(box_deltas.dtype))
        if not self.postprocess:
            return (output,)
        return (output.sigmoid(),) if kind == "binary" else (output.softmax(dim=1),)
