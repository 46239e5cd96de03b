"""Streams are planned in the spec layer now: :mod:`mtdsl.spec.streams`.

This module re-exports them, because ``train.py`` files generated before the
move import ``Stream`` from here.
"""

from mtdsl.spec.streams import Stream, batch_size, is_balanced, plan_streams

__all__ = ["Stream", "batch_size", "is_balanced", "plan_streams"]
