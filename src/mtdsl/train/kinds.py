"""The training side of every task kind: importing this module registers each kind's ``train.py``.

A kind's folder registers its metric (:data:`~mtdsl.train.metrics.metric.METRICS`), its label
encoder (:data:`~mtdsl.train.data.labels.ENCODERS`) and what its targets label
(:data:`~mtdsl.train.data.examples.LABELLED`); those tables import this module on first use.
A new kind adds one line here.
"""

from __future__ import annotations

# The registration order is the order kinds are listed in.
# isort: off
from mtdsl.kinds.classify import train as _classify  # noqa: F401  (importing a kind's side registers it)
from mtdsl.kinds.binary import train as _binary  # noqa: F401
from mtdsl.kinds.multilabel import train as _multilabel  # noqa: F401
from mtdsl.kinds.detect import train as _detect  # noqa: F401
from mtdsl.kinds.segment import train as _segment  # noqa: F401
from mtdsl.kinds.keypoints import train as _keypoints  # noqa: F401
# isort: on
