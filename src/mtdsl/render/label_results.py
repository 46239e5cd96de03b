"""An image-label task's result: the record ``mtdsl predict`` writes, and its few-word caption.

``mtdsl predict`` puts :func:`label_output` in ``predictions.json`` and
:func:`label_text` on drawn images; a run folder's prediction images caption
their images with the same words.

>>> import torch
>>> output = label_output("classify", ["cat", "dog"], torch.tensor([0.0, 2.0]))
>>> output["class"], output["score"], label_text("pet", output)
('dog', 0.8808, 'dog 0.88')
>>> label_text("large", label_output("binary", None, torch.tensor([1.5])))
'large yes 0.82'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from mtdsl.kinds.registry import KindTable

#: Classes listed under ``"top"`` for a classify task.
TOP_K = 5


def rounded(value: float, digits: int = 5) -> float:
    return round(float(value), digits)


#: How each image-label kind words one image's result, registered from the kind's folder
#: (``mtdsl/kinds/<kind>/render.py``): ``decode(classes, logits, top) -> dict`` of its words, without the kind.
LABEL_OUTPUTS: KindTable[Callable[[Sequence[str] | None, torch.Tensor, int], dict[str, Any]]] = KindTable(
    "label output", loads="mtdsl.render.kinds")


def label_output(kind: str, classes: Sequence[str] | None, logits: torch.Tensor, top: int = TOP_K) -> dict[str, Any]:
    """One image's result for an image-label task from its ``(C,)`` logits, as its kind words it.

    Returns:
        classify: ``{"kind", "class", "score", "top": [{"class", "score"}, ...]}``;
        binary: ``{"kind", "positive", "score"}``;
        multilabel: ``{"kind", "labels": [names over 0.5], "scores": {name: score}}``.
    """
    return {"kind": kind, **LABEL_OUTPUTS[kind](classes, logits.detach().float().cpu(), top)}


def label_text(task: str, output: dict[str, Any]) -> str:
    """``"Bengal 0.77"``, ``"large yes 0.81"``, ``"x+y"``: a label task's result in a few characters."""
    if "class" in output:
        return f"{output['class']} {output['score']:.2f}"
    if "positive" in output:
        return f"{task} {'yes' if output['positive'] else 'no'} {output['score']:.2f}"
    return "+".join(output["labels"]) or f"{task}: none"
