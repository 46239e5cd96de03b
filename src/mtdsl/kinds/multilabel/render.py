"""How ``multilabel`` words a prediction: the labels whose sigmoid is over 0.5, and every label's score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mtdsl.kinds.multilabel.kind import MULTILABEL
from mtdsl.render.label_results import LABEL_OUTPUTS, rounded


@LABEL_OUTPUTS.register(MULTILABEL.name)
def label_output(classes: Sequence[str] | None, logits: torch.Tensor, top: int) -> dict[str, Any]:
    assert classes is not None
    probabilities = logits.sigmoid().tolist()
    return {
        "labels": [name for name, p in zip(classes, probabilities) if p > 0.5],
        "scores": {name: rounded(p) for name, p in zip(classes, probabilities)},
    }
