"""What ``mtdsl predict`` makes of a ``classify`` task's outputs: its words for each image (see its ``render.py``)."""

from __future__ import annotations

from mtdsl.kinds.classify.kind import CLASSIFY
from mtdsl.predict.predictor import DECODERS, decode_labels
from mtdsl.predict.results import SUMMARIES, label_summary
from mtdsl.predict.writing import DRAWN, draw_title

DECODERS.register(CLASSIFY.name)(decode_labels)
DRAWN.register(CLASSIFY.name)(draw_title)
SUMMARIES.register(CLASSIFY.name)(label_summary)
