"""Task kinds, one folder each; importing this package registers every kind in :data:`TASK_KINDS`.

See :mod:`mtdsl.kinds.registry` for what a kind is and how each layer reaches it.
A new kind adds its folder and one line here.
"""

from __future__ import annotations

from mtdsl.kinds.registry import TASK_KINDS, TaskKind

# The registration order is the order kinds are listed in.
# isort: off
from mtdsl.kinds.classify import kind as _classify  # noqa: F401  (importing a kind registers it)
from mtdsl.kinds.binary import kind as _binary  # noqa: F401
from mtdsl.kinds.multilabel import kind as _multilabel  # noqa: F401
from mtdsl.kinds.detect import kind as _detect  # noqa: F401
from mtdsl.kinds.segment import kind as _segment  # noqa: F401
from mtdsl.kinds.keypoints import kind as _keypoints  # noqa: F401
# isort: on

__all__ = ["TASK_KINDS", "TaskKind"]
