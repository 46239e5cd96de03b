"""What every neck is: a module that outputs one map per pyramid level ``min_level`` … ``max_level``."""

from __future__ import annotations

from torch import nn


class Pyramid(nn.Module):
    """Base of the necks: level ``l`` is a map at stride ``2**l``, finest first."""

    min_level: int
    max_level: int

    @property
    def levels(self) -> list[int]:
        return list(range(self.min_level, self.max_level + 1))

    @property
    def strides(self) -> list[int]:
        return [2**level for level in self.levels]
