"""What ``mtdsl predict`` makes of a ``classify`` task's outputs: its words for each image (see its ``render.py``)."""

from __future__ import annotations

from mtdsl.kinds.classify.kind import CLASSIFY
from mtdsl.predict.predictor import DECODERS, decode_labels
from mtdsl.predict.results import SUMMARIES, label_summary

DECODERS.register(CLASSIFY.name)(decode_labels)
SUMMARIES.register(CLASSIFY.name)(label_summary)
