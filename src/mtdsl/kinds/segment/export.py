"""What an exported model returns for ``segment``: ``<task>``, logits or softmax probabilities ``(N, C, H, W)``."""

from __future__ import annotations

from mtdsl.export.outputs import FINISHES, OUTPUTS, Output, OutputPlan, softmax_finish
from mtdsl.kinds.segment.kind import SEGMENT

FINISHES.register(SEGMENT.name)(softmax_finish)


@OUTPUTS.register(SEGMENT.name)
def outputs(task: str, classes: int, plan: OutputPlan) -> list[Output]:
    meaning = "class probabilities (softmax) per pixel" if plan.postprocess else "class logits per pixel"
    return [Output(task, task, ("N", classes, *plan.image_size), meaning)]
