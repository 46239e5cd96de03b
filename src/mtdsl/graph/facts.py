"""The facts a sharing-graph node holds, as typed records: one class per node kind.

networkx keeps a node's facts as a dict of attributes, and ``graph.json`` writes that
dict as it is (:mod:`mtdsl.graph.serialize`). Passes do not index the dict: they
ask :func:`facts` for the node's record and read typed fields, so a misspelt or
missing fact fails at the one place that reads the dict, naming the node. The
records are written by :func:`mtdsl.graph.build.build_graph` (:meth:`NodeFacts.attributes`)
and completed by later passes (``tasks`` and ``shared`` by the graph's paths,
``frozen_in`` by :mod:`mtdsl.graph.freeze`, a neck's or head's ``params`` by
:mod:`mtdsl.nn.parameters`).

:attr:`NodeFacts.place` is where the node's module lives in the model, as attribute names
(``("branches", "b", "stage4")``), said once per kind from the record's own fields; freezing,
``lr_scale``, the FLOP count and the module plan all read it (or :attr:`NodeFacts.module`, the
same dotted: ``branches.b.stage4``, the ``module`` attribute of ``graph.json``).

>>> import networkx as nx
>>> g = nx.DiGraph()
>>> g.add_node("a.head", kind="head", label="a head", task="a", task_kind="classify",
...            head={"kind": "linear"}, in_channels=8, num_outputs=3, classes=["x", "y", "z"],
...            channels=3, stride=0, tasks=["a"], shared=False)
>>> head = facts(g, "a.head")
>>> type(head).__name__, head.module, head.place, head.num_levels
('HeadFacts', 'heads.a', ('heads', 'a'), None)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

import networkx as nx

NodeKind = Literal["input", "backbone", "branch", "neck", "head"]


@dataclass(frozen=True, kw_only=True)
class NodeFacts:
    """What every node holds."""

    kind: NodeKind
    label: str
    channels: int
    stride: int
    params: int = 0
    tasks: tuple[str, ...] = ()
    shared: bool = False
    frozen_in: tuple[str, ...] = ()

    #: Facts written only when they hold (``pooled``, ``tokens``, ``whole``, ``num_levels``): left out of
    #: ``graph.json`` when ``False`` or ``None``.
    _only_when_set: ClassVar[tuple[str, ...]] = ()

    @property
    def place(self) -> tuple[str, ...]:
        """Where the node's module lives in the model, as attribute names; ``()`` for the input."""
        return ()

    @property
    def module(self) -> str:
        """:attr:`place`, dotted: ``branches.b.stage4``; ``""`` for the input."""
        return ".".join(self.place)

    def attributes(self) -> dict[str, Any]:
        """The node's attribute dict, as networkx and ``graph.json`` hold it."""
        values = {**asdict(self), "module": self.module}
        for name in self._only_when_set:
            if values[name] is None or values[name] is False:
                del values[name]
        return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}


@dataclass(frozen=True, kw_only=True)
class InputFacts(NodeFacts):
    """The input images."""

    kind: Literal["input"] = "input"


@dataclass(frozen=True, kw_only=True)
class SegmentFacts(NodeFacts):
    """Segment ``segment`` of backbone ``backbone``: shared (kind ``backbone``) or task ``owner``'s copy
    (``branch``)."""

    kind: Literal["backbone", "branch"]
    backbone: str
    model: str
    segment: str
    owner: str | None = None
    timm_modules: tuple[str, ...] = ()
    #: It ends in a global pool (a ``pre_logits`` segment): its edges carry 1×1 maps.
    pooled: bool = False
    #: A vision transformer's segment: it hands on tokens (see :mod:`mtdsl.nn.plan`).
    tokens: bool = False
    #: A segment of a backbone run whole (timm's extractor, then pass-throughs of its maps; see
    #: :func:`mtdsl.graph.backbones.whole_info`): it hands on all the maps, and anything but the next segment
    #: reads its own.
    whole: bool = False

    _only_when_set: ClassVar[tuple[str, ...]] = ("pooled", "tokens", "whole")

    @property
    def viewed(self) -> bool:
        """What it hands the next segment is no map: a reader other than a segment reads a view of it."""
        return self.tokens or self.whole

    @property
    def place(self) -> tuple[str, ...]:
        if self.kind == "branch":
            return ("branches", self.owner or "", self.segment)
        return ("backbone", self.backbone, self.segment)


@dataclass(frozen=True, kw_only=True)
class NeckFacts(NodeFacts):
    """Neck ``neck``, reading ``inputs`` (finest first) and giving the pyramid levels ``levels``."""

    kind: Literal["neck"] = "neck"
    neck: str
    config: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    in_channels: tuple[int, ...] = ()
    in_strides: tuple[int, ...] = ()
    levels: tuple[int, ...] = ()

    @property
    def place(self) -> tuple[str, ...]:
        return ("necks", self.neck)


@dataclass(frozen=True, kw_only=True)
class HeadFacts(NodeFacts):
    """The head of task ``task`` (a ``task_kind``), with ``num_outputs`` outputs."""

    kind: Literal["head"] = "head"
    task: str
    task_kind: str
    head: dict[str, Any] = field(default_factory=dict)
    in_channels: int
    num_outputs: int
    classes: tuple[str, ...] = ()
    #: The pyramid levels a dense head reads; ``None`` for a head on one map.
    num_levels: int | None = None

    _only_when_set: ClassVar[tuple[str, ...]] = ("num_levels",)

    @property
    def place(self) -> tuple[str, ...]:
        return ("heads", self.task)


FACTS: dict[str, type[NodeFacts]] = {
    "input": InputFacts, "backbone": SegmentFacts, "branch": SegmentFacts, "neck": NeckFacts, "head": HeadFacts,
}


def facts_of(node: str, data: dict[str, Any]) -> NodeFacts:
    """The record of node ``node`` from its attribute dict; a missing or unknown fact names the node."""
    kind = data.get("kind")
    if kind not in FACTS:
        raise ValueError(f"graph node '{node}' has kind {kind!r}, not one of {', '.join(FACTS)}")
    record = FACTS[kind]
    known = {f.name for f in fields(record)} | {"module"}  # module: derived from the others (NodeFacts.place)
    values: dict[str, Any] = {name: tuple(value) if isinstance(value, list) else value
                              for name, value in data.items() if name in known and name != "module"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"graph node '{node}' ({kind}) holds facts no {record.__name__} has: {', '.join(unknown)}")
    try:
        found = record(**values)
    except TypeError as error:  # a required fact is missing
        raise ValueError(f"graph node '{node}' ({kind}): {error}") from None
    if "module" in data and data["module"] != found.module:
        raise ValueError(f"graph node '{node}' says its module is '{data['module']}', but its facts place it at "
                         f"'{found.module}'")
    return found


def facts(graph: nx.DiGraph, node: str) -> NodeFacts:
    """Node ``node``'s record."""
    return facts_of(node, graph.nodes[node])


def every_fact(graph: nx.DiGraph) -> dict[str, NodeFacts]:
    """Every node's record, in the graph's node order."""
    return {node: facts_of(node, data) for node, data in graph.nodes(data=True)}
