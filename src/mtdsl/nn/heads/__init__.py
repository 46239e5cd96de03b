"""Task heads. Importing this package registers every head kind."""

from mtdsl.nn.heads import classification, dense
from mtdsl.nn.heads.classification import ClassificationHead
from mtdsl.nn.heads.registry import HEAD_BUILDERS, HEAD_CONFIGS, HeadConfig, build_head, head_source, heads_for

__all__ = [
    "HEAD_BUILDERS",
    "HEAD_CONFIGS",
    "ClassificationHead",
    "HeadConfig",
    "build_head",
    "classification",
    "dense",
    "head_source",
    "heads_for",
]
