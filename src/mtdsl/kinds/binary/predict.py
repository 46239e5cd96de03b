"""What ``mtdsl predict`` makes of a ``binary`` task's outputs: its words for each image (see its ``render.py``)."""

from __future__ import annotations

from mtdsl.kinds.binary.kind import BINARY
from mtdsl.predict.predictor import DECODERS, decode_labels
from mtdsl.predict.results import SUMMARIES, label_summary
from mtdsl.predict.writing import DRAWN, draw_title

DECODERS.register(BINARY.name)(decode_labels)
DRAWN.register(BINARY.name)(draw_title)
SUMMARIES.register(BINARY.name)(label_summary)
