"""What an exported model returns for ``binary``: ``<task>``, its logit or sigmoid probability ``(N, 1)``."""

from __future__ import annotations

from mtdsl.export.outputs import FINISHES, OUTPUTS, Output, OutputPlan, sigmoid_finish
from mtdsl.kinds.binary.kind import BINARY

FINISHES.register(BINARY.name)(sigmoid_finish)


@OUTPUTS.register(BINARY.name)
def outputs(task: str, classes: int, plan: OutputPlan) -> list[Output]:
    return [Output(task, task, ("N", 1), "probability (sigmoid)" if plan.postprocess else "logit")]
