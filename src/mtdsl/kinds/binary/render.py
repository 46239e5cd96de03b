"""How ``binary`` words a prediction: yes when the sigmoid of its one logit is over 0.5."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mtdsl.kinds.binary.kind import BINARY
from mtdsl.render.label_results import LABEL_OUTPUTS, rounded


@LABEL_OUTPUTS.register(BINARY.name)
def label_output(classes: Sequence[str] | None, logits: torch.Tensor, top: int) -> dict[str, Any]:
    score = float(logits.sigmoid()[0])
    return {"positive": score > 0.5, "score": rounded(score)}
