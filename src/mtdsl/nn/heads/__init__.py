"""Task heads. Importing this package registers the builder of every head kind.

The head configs live in :mod:`mtdsl.spec.heads`; ``HEAD_CONFIGS``,
``HeadConfig`` and ``heads_for`` are re-exported here for code written
before they moved.
"""

from mtdsl.nn.heads import classification, dense, heatmap
from mtdsl.nn.heads.classification import ClassificationHead
from mtdsl.nn.heads.registry import HEAD_BUILDERS, build_head, head_call
from mtdsl.spec.heads import HEAD_CONFIGS, HeadConfig, heads_for

__all__ = [
    "HEAD_BUILDERS",
    "HEAD_CONFIGS",
    "ClassificationHead",
    "HeadConfig",
    "build_head",
    "classification",
    "dense",
    "head_call",
    "heads_for",
    "heatmap",
]
