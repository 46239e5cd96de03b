"""What an exported model returns for ``keypoints``: its heatmap logits ``<task>`` ``(N, K, h, w)``; with
``postprocess`` each point at its heatmap's peak, ``<task>.points`` ``(N, K, 2)`` ``(x, y)`` in input
pixels, and the peak's probability, ``<task>.scores`` ``(N, K)`` (:func:`~mtdsl.nn.heads.heatmap.decode_heatmaps`,
the decoding ``mtdsl predict`` does)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mtdsl.export.outputs import FINISHES, OUTPUTS, NamedOutputs, Output, OutputPlan
from mtdsl.kinds.keypoints.kind import KEYPOINTS
from mtdsl.nn.heads.heatmap import decode_heatmaps


@OUTPUTS.register(KEYPOINTS.name)
def outputs(task: str, classes: int, plan: OutputPlan) -> list[Output]:
    if plan.postprocess:
        return [
            Output(f"{task}.points", task, ("N", classes, 2),
                   "each point (x, y) in input pixels, at its heatmap's peak"),
            Output(f"{task}.scores", task, ("N", classes), "each point's probability (sigmoid of its peak)"),
        ]
    return [Output(task, task, ("N", classes, "h", "w"),
                   "heatmap logits per point, h x w = the input / the head's stride; a point is its map's peak")]


@FINISHES.register(KEYPOINTS.name)
def finish(module: NamedOutputs, task: str, output: Any) -> Sequence[torch.Tensor]:
    if not module.postprocess:
        return (output,)
    if module.image_size is None:
        raise ValueError(f"task '{task}' decodes points in input pixels: give NamedOutputs the image_size")
    return decode_heatmaps(output, module.image_size)
