"""Which nodes each training phase freezes, written onto the graph as ``frozen_in``.

Freeze targets name parts of the model, never positions:

=================  ===========================================================
``shared``         every segment used by two tasks or more
``backbones``      every backbone segment, shared or task-private
``branches``       every task-private segment copy
``heads``          every head
``necks``          every neck
``pyramid``        neck ``pyramid``
``trunk``          every segment of backbone ``trunk``, copies included
``trunk.stage3``   segment ``stage3`` of ``trunk`` and every copy of it
``beans``          everything only task ``beans`` uses (its copies and head)
``beans.head``     the head of task ``beans``
=================  ===========================================================

>>> import networkx as nx
>>> g = nx.DiGraph()
>>> g.add_node("trunk.stem", kind="segment", backbone="trunk", segment="stem", tasks=["a", "b"], shared=True)
>>> g.add_node("a.head", kind="head", task="a", tasks=["a"], shared=False)
>>> sorted(nodes_for(g, SegmentRef("shared"))), sorted(nodes_for(g, SegmentRef("a")))
(['trunk.stem'], ['a.head'])
"""

from __future__ import annotations

import networkx as nx

from mtdsl.spec.document import Spec
from mtdsl.spec.references import SegmentRef

_SEGMENT_KINDS = ("segment", "branch")

def nodes_for(graph: nx.DiGraph, target: SegmentRef) -> set[str]:
    """The nodes a freeze target names; an unknown target names none."""
    nodes = graph.nodes
    word = target.owner if target.is_whole else None
    if word == "shared":
        return {n for n, d in nodes(data=True) if d.get("kind") in _SEGMENT_KINDS and d["shared"]}
    if word == "backbones":
        return {n for n, d in nodes(data=True) if d.get("kind") in _SEGMENT_KINDS}
    if word == "branches":
        return {n for n, d in nodes(data=True) if d.get("kind") == "branch"}
    if word == "heads":
        return {n for n, d in nodes(data=True) if d.get("kind") == "head"}
    if word == "necks":
        return {n for n, d in nodes(data=True) if d.get("kind") == "neck"}
    necks = {n for n, d in nodes(data=True) if d.get("kind") == "neck" and d.get("neck") == word}
    if necks:
        return necks
    owner, part = target.owner, target.segment
    if part == "head":
        return {n for n, d in nodes(data=True) if d.get("kind") == "head" and d.get("task") == owner}
    by_backbone = {n for n, d in nodes(data=True) if d.get("kind") in _SEGMENT_KINDS and d.get("backbone") == owner}
    if by_backbone:
        return {n for n in by_backbone if not part or nodes[n]["segment"] == part}
    return {n for n, d in nodes(data=True) if d.get("kind") != "input" and d.get("tasks") == [owner]}


def mark_frozen(graph: nx.DiGraph, spec: Spec) -> nx.DiGraph:
    for _, data in graph.nodes(data=True):
        data["frozen_in"] = []
    for phase in spec.train.phases:
        frozen: set[str] = set()
        for target in phase.freeze:
            frozen |= nodes_for(graph, target)
        for node in sorted(frozen):
            graph.nodes[node]["frozen_in"].append(phase.name)
    return graph
