"""What ``mtdsl predict`` makes of each task kind's outputs: importing this module registers each kind's
``predict.py``.

:data:`~mtdsl.predict.predictor.DECODERS` and :data:`~mtdsl.predict.results.SUMMARIES` import it
on first use. A new kind adds one line here.
"""

from __future__ import annotations

# The registration order is the order kinds are listed in.
# isort: off
from mtdsl.kinds.classify import predict as _classify  # noqa: F401  (importing a kind's side registers it)
from mtdsl.kinds.binary import predict as _binary  # noqa: F401
from mtdsl.kinds.multilabel import predict as _multilabel  # noqa: F401
from mtdsl.kinds.detect import predict as _detect  # noqa: F401
from mtdsl.kinds.segment import predict as _segment  # noqa: F401
from mtdsl.kinds.keypoints import predict as _keypoints  # noqa: F401
# isort: on
