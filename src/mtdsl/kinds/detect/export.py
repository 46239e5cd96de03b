"""What an exported model returns for ``detect``: class logits and box deltas per anchor; with
``postprocess`` scores and decoded boxes; with ``nms`` the ``max_detections`` best boxes (see
:mod:`mtdsl.export.outputs`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mtdsl.detection.boxes import decode
from mtdsl.export.outputs import FINISHES, OUTPUTS, NamedOutputs, Output, OutputPlan
from mtdsl.kinds.detect.kind import DETECT


@OUTPUTS.register(DETECT.name)
def outputs(task: str, classes: int, plan: OutputPlan) -> list[Output]:
    count = plan.anchors[task]
    if plan.nms is not None:
        most = plan.nms[task]
        return [
            Output(f"{task}.boxes", task, ("N", most, 4),
                   "best boxes first, (x0, y0, x1, y1) in input pixels; rows from count on are zeros"),
            Output(f"{task}.scores", task, ("N", most), "each box's class probability; 0 after count"),
            Output(f"{task}.classes", task, ("N", most), "each box's class index (int64); -1 after count"),
            Output(f"{task}.count", task, ("N",), "how many rows of each image are detections (int64)"),
        ]
    if plan.postprocess:
        return [
            Output(f"{task}.scores", task, ("N", count, classes), "class probabilities (sigmoid) per anchor"),
            Output(f"{task}.boxes", task, ("N", count, 4), "boxes (x0, y0, x1, y1) in input pixels"),
        ]
    return [Output(f"{task}.class_logits", task, ("N", count, classes), "class logits per anchor"),
            Output(f"{task}.box_deltas", task, ("N", count, 4),
                   "(dx, dy, dw, dh) against the anchors, see mtdsl.detection.boxes.decode")]


@FINISHES.register(DETECT.name)
def finish(module: NamedOutputs, task: str, output: Any) -> Sequence[torch.Tensor]:
    class_logits, box_deltas = output
    if module.detections is not None:
        return module.detections[task](class_logits, box_deltas)
    if not module.postprocess:
        return class_logits, box_deltas
    return class_logits.sigmoid(), decode(box_deltas, module.anchors(task).to(box_deltas.dtype))
