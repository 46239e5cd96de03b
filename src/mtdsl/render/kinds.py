"""How each image-label kind words a prediction: importing this module registers each kind's ``render.py``.

:data:`~mtdsl.render.label_results.LABEL_OUTPUTS` imports it on first use. A new image-label kind
adds one line here.
"""

from __future__ import annotations

# The registration order is the order kinds are listed in.
# isort: off
from mtdsl.kinds.classify import render as _classify  # noqa: F401  (importing a kind's side registers it)
from mtdsl.kinds.binary import render as _binary  # noqa: F401
from mtdsl.kinds.multilabel import render as _multilabel  # noqa: F401
# isort: on
