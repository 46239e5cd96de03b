"""Typed keys for the nodes of the sharing graph, and the one place their ids are written.

networkx and ``graph.json`` key nodes by text (``trunk.stage3``,
``b/trunk.stage4``, ``pyramid``, ``b.head``). The passes that lay out paths
and build nodes hand these keys around instead, and read their fields; only
:attr:`id` turns a key into text, and nothing turns text back into a key.

>>> [key.id for key in (SegmentNode("trunk", "stage3"), SegmentNode("trunk", "stage4", owner="b"))]
['trunk.stage3', 'b/trunk.stage4']
>>> NeckNode("pyramid").id, HeadNode("b").id
('pyramid', 'b.head')
"""

from __future__ import annotations

from dataclasses import dataclass

from mtdsl.spec.references import SegmentRef


@dataclass(frozen=True)
class SegmentNode:
    """Segment ``segment`` of backbone ``backbone``: shared, or task ``owner``'s private copy."""

    backbone: str
    segment: str
    owner: str | None = None

    @property
    def id(self) -> str:
        shared = str(SegmentRef(self.backbone, self.segment))
        return shared if self.owner is None else f"{self.owner}/{shared}"


@dataclass(frozen=True)
class NeckNode:
    """Neck ``neck``, shared by every task that taps it."""

    neck: str

    @property
    def id(self) -> str:
        return self.neck


@dataclass(frozen=True)
class HeadNode:
    """The head of task ``task``."""

    task: str

    @property
    def id(self) -> str:
        return str(SegmentRef(self.task, "head"))


NodeKey = SegmentNode | NeckNode | HeadNode
