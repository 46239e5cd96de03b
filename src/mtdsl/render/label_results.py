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

from collections.abc import Sequence
from typing import Any

import torch

#: Classes listed under ``"top"`` for a classify task.
TOP_K = 5


def rounded(value: float, digits: int = 5) -> float:
    return round(float(value), digits)


def label_output(kind: str, classes: Sequence[str] | None, logits: torch.Tensor, top: int = TOP_K) -> dict[str, Any]:
    """One image's result for a classify, binary or multilabel task from its ``(C,)`` logits.

    Returns:
        classify: ``{"kind", "class", "score", "top": [{"class", "score"}, ...]}``;
        binary: ``{"kind", "positive", "score"}``;
        multilabel: ``{"kind", "labels": [names over 0.5], "scores": {name: score}}``.
    """
    logits = logits.detach().float().cpu()
    if kind == "classify":
        assert classes is not None
        probabilities = logits.softmax(-1)
        values, indices = probabilities.topk(min(top, probabilities.numel()))
        ranked = [{"class": classes[int(i)], "score": rounded(v)} for v, i in zip(values, indices)]
        return {"kind": kind, **ranked[0], "top": ranked}
    probabilities = logits.sigmoid()
    if kind == "binary":
        score = float(probabilities[0])
        return {"kind": kind, "positive": score > 0.5, "score": rounded(score)}
    assert classes is not None
    return {
        "kind": kind,
        "labels": [name for name, p in zip(classes, probabilities.tolist()) if p > 0.5],
        "scores": {name: rounded(p) for name, p in zip(classes, probabilities.tolist())},
    }


def label_text(task: str, output: dict[str, Any]) -> str:
    """``"Bengal 0.77"``, ``"large yes 0.81"``, ``"x+y"``: a label task's result in a few characters."""
    if "class" in output:
        return f"{output['class']} {output['score']:.2f}"
    if "positive" in output:
        return f"{task} {'yes' if output['positive'] else 'no'} {output['score']:.2f}"
    return "+".join(output["labels"]) or f"{task}: none"
