"""What ``mtdsl predict`` makes of a ``multilabel`` task's outputs: its words for each image (see its ``render.py``)."""

from __future__ import annotations

from mtdsl.kinds.multilabel.kind import MULTILABEL
from mtdsl.predict.predictor import DECODERS, decode_labels
from mtdsl.predict.results import SUMMARIES, label_summary
from mtdsl.predict.writing import DRAWN, draw_title

DECODERS.register(MULTILABEL.name)(decode_labels)
DRAWN.register(MULTILABEL.name)(draw_title)
SUMMARIES.register(MULTILABEL.name)(label_summary)
