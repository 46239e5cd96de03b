"""How ``classify`` words a prediction: the top class and the ``top`` best, with their softmax scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mtdsl.kinds.classify.kind import CLASSIFY
from mtdsl.render.label_results import LABEL_OUTPUTS, rounded


@LABEL_OUTPUTS.register(CLASSIFY.name)
def label_output(classes: Sequence[str] | None, logits: torch.Tensor, top: int) -> dict[str, Any]:
    assert classes is not None
    probabilities = logits.softmax(-1)
    values, indices = probabilities.topk(min(top, probabilities.numel()))
    ranked = [{"class": classes[int(i)], "score": rounded(v)} for v, i in zip(values, indices)]
    return {**ranked[0], "top": ranked}
