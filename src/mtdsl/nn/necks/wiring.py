"""Feature-pyramid wiring as data: the fusion nodes of one neck layer.

A layer starts with one feature map per level, ``min_level … max_level``, at
offsets ``0 … L-1``. Each :class:`FusionNode` resamples the maps at its
``inputs`` offsets to its ``level``, fuses them and appends the result, so the
``k``-th node's output sits at offset ``L + k``. This is effdet's
``fpn_config`` (``{feat_level, inputs_offsets, weight_method}``); the generic
modules in :mod:`mtdsl.nn.necks.bifpn` and :mod:`mtdsl.nn.necks.fpn` are built
from it, and a layer's outputs are the last map of each level
(:func:`output_offsets`). Which backbone maps feed the layer is the spec's
business (:func:`mtdsl.spec.necks.pyramid_inputs`, re-exported here).

The BiFPN for P3–P7 (EfficientDet, Tan et al. 2020, Fig. 2d): a top-down path
P6 → P3 then a bottom-up path P4 → P7, where the bottom-up nodes also read the
level's original input (the cross-scale skip edge).

>>> for node in bifpn_wiring(3, 7):
...     print(node)
P6 <- (3, 4) fastattn
P5 <- (2, 5) fastattn
P4 <- (1, 6) fastattn
P3 <- (0, 7) fastattn
P4 <- (1, 7, 8) fastattn
P5 <- (2, 6, 9) fastattn
P6 <- (3, 5, 10) fastattn
P7 <- (4, 11) fastattn
>>> output_offsets(bifpn_wiring(3, 7), 3, 7)
[8, 9, 10, 11, 12]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mtdsl.spec.necks import check_levels, pyramid_inputs

WeightMethod = Literal["fastattn", "sum"]

__all__ = ["FusionNode", "WeightMethod", "bifpn_wiring", "check_levels", "check_wiring", "fpn_wiring",
           "output_offsets", "pyramid_inputs"]

WEIGHT_METHODS: tuple[str, ...] = ("fastattn", "sum")


@dataclass(frozen=True)
class FusionNode:
    """One fusion node of a pyramid layer.

    Attributes:
        level: pyramid level of the output (stride ``2**level``).
        inputs: offsets into the layer's growing list of feature maps: ``0 … L-1``
            are the layer's inputs (levels ``min_level … max_level``), ``L + k`` is
            the output of node ``k``.
        weight_method: ``fastattn`` (learned, fast-normalised weights) or ``sum``.
    """

    level: int
    inputs: tuple[int, ...]
    weight_method: WeightMethod = "fastattn"

    def __post_init__(self) -> None:
        if self.weight_method not in WEIGHT_METHODS:
            raise ValueError(
                f"unknown weight_method {self.weight_method!r}, valid methods: {', '.join(WEIGHT_METHODS)}"
            )
        if not self.inputs:
            raise ValueError(f"fusion node at level {self.level} has no inputs")

    def __str__(self) -> str:
        return f"P{self.level} <- {self.inputs} {self.weight_method}"


def bifpn_wiring(min_level: int = 3, max_level: int = 7, weight_method: WeightMethod = "fastattn") -> list[FusionNode]:
    """The nodes of one BiFPN layer: top-down from ``max_level - 1`` to ``min_level``, then bottom-up.

    A top-down node reads its level's latest map and the latest map one level up.
    A bottom-up node reads every map of its level so far (the original input and,
    below ``max_level``, the top-down node) and the latest map one level down.
    For P3–P7 that is 8 nodes (see the module docstring). Same as effdet's
    ``bifpn_config``.
    """
    check_levels(min_level, max_level)
    ids: dict[int, list[int]] = {level: [i] for i, level in enumerate(range(min_level, max_level + 1))}
    next_id = len(ids)
    nodes: list[FusionNode] = []

    def add(level: int, inputs: list[int]) -> None:
        nonlocal next_id
        nodes.append(FusionNode(level, tuple(inputs), weight_method))
        ids[level].append(next_id)
        next_id += 1

    for level in range(max_level - 1, min_level - 1, -1):
        add(level, [ids[level][-1], ids[level + 1][-1]])
    for level in range(min_level + 1, max_level + 1):
        add(level, ids[level] + [ids[level - 1][-1]])
    return nodes


def fpn_wiring(min_level: int = 3, max_level: int = 7, weight_method: WeightMethod = "sum") -> list[FusionNode]:
    """The top-down path of a classic FPN (Lin et al. 2017): ``P_l = C_l + up(P_{l+1})``.

    >>> [str(node) for node in fpn_wiring(3, 5)]
    ['P4 <- (1, 2) sum', 'P3 <- (0, 3) sum']
    """
    check_levels(min_level, max_level)
    ids = {level: i for i, level in enumerate(range(min_level, max_level + 1))}
    nodes: list[FusionNode] = []
    for level in range(max_level - 1, min_level - 1, -1):
        nodes.append(FusionNode(level, (ids[level], ids[level + 1]), weight_method))
        ids[level] = max_level - min_level + len(nodes)
    return nodes


def output_offsets(nodes: list[FusionNode], min_level: int, max_level: int) -> list[int]:
    """Offset of the last map of each level, ``min_level … max_level``: the layer's outputs."""
    last = {level: i for i, level in enumerate(range(min_level, max_level + 1))}
    for k, node in enumerate(nodes):
        last[node.level] = max_level - min_level + 1 + k
    return [last[level] for level in range(min_level, max_level + 1)]


def check_wiring(nodes: list[FusionNode], min_level: int, max_level: int) -> None:
    """Raise ``ValueError`` when a node reads a map that does not exist yet or sits outside the levels."""
    available = max_level - min_level + 1
    for k, node in enumerate(nodes):
        if not min_level <= node.level <= max_level:
            raise ValueError(f"node {k} ({node}) is outside levels P{min_level}–P{max_level}")
        bad = [offset for offset in node.inputs if not 0 <= offset < available]
        if bad:
            raise ValueError(
                f"node {k} ({node}) reads offsets {bad}, but only 0…{available - 1} exist at that point; "
                "an input must be a layer input or an earlier node"
            )
        available += 1
