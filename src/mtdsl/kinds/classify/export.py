"""What an exported model returns for ``classify``: ``<task>``, logits or softmax probabilities ``(N, C)``."""

from __future__ import annotations

from mtdsl.export.outputs import FINISHES, OUTPUTS, Output, OutputPlan, softmax_finish
from mtdsl.kinds.classify.kind import CLASSIFY

FINISHES.register(CLASSIFY.name)(softmax_finish)


@OUTPUTS.register(CLASSIFY.name)
def outputs(task: str, classes: int, plan: OutputPlan) -> list[Output]:
    meaning = "class probabilities (softmax)" if plan.postprocess else "class logits"
    return [Output(task, task, ("N", classes), meaning)]
