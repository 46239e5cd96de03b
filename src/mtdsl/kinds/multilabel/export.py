"""What an exported model returns for ``multilabel``: ``<task>``, logits ``(N, C)``, or with ``postprocess``
each label's sigmoid probability, independent of the others (as training's binary cross-entropy and
``mtdsl predict`` read them)."""

from __future__ import annotations

from mtdsl.export.outputs import FINISHES, OUTPUTS, Output, OutputPlan, sigmoid_finish
from mtdsl.kinds.multilabel.kind import MULTILABEL

FINISHES.register(MULTILABEL.name)(sigmoid_finish)


@OUTPUTS.register(MULTILABEL.name)
def outputs(task: str, classes: int, plan: OutputPlan) -> list[Output]:
    meaning = "label probabilities (sigmoid, each on its own)" if plan.postprocess else "label logits"
    return [Output(task, task, ("N", classes), meaning)]
