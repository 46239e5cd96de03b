"""What an exported model returns for ``multilabel``: ``<task>``, logits ``(N, C)``, or with ``postprocess``
their softmax over the labels, as a classify task's (as mtdsl has always exported them)."""

from __future__ import annotations

from mtdsl.export.outputs import FINISHES, OUTPUTS, Output, OutputPlan, softmax_finish
from mtdsl.kinds.multilabel.kind import MULTILABEL

FINISHES.register(MULTILABEL.name)(softmax_finish)


@OUTPUTS.register(MULTILABEL.name)
def outputs(task: str, classes: int, plan: OutputPlan) -> list[Output]:
    meaning = "class probabilities (softmax)" if plan.postprocess else "class logits"
    return [Output(task, task, ("N", classes), meaning)]
