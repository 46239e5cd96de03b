"""What an exported model returns for each task kind: importing this module registers each kind's ``export.py``.

:data:`~mtdsl.export.outputs.OUTPUTS` and :data:`~mtdsl.export.outputs.FINISHES` import it on
first use. A new kind adds one line here.
"""

from __future__ import annotations

# The registration order is the order kinds are listed in.
# isort: off
from mtdsl.kinds.classify import export as _classify  # noqa: F401  (importing a kind's side registers it)
from mtdsl.kinds.binary import export as _binary  # noqa: F401
from mtdsl.kinds.multilabel import export as _multilabel  # noqa: F401
from mtdsl.kinds.detect import export as _detect  # noqa: F401
from mtdsl.kinds.segment import export as _segment  # noqa: F401
from mtdsl.kinds.keypoints import export as _keypoints  # noqa: F401
# isort: on
