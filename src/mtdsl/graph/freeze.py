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
>>> from mtdsl.graph.facts import HeadFacts, SegmentFacts
>>> g = nx.DiGraph()
>>> g.add_node("trunk.stem", **SegmentFacts(kind="backbone", label="stem", backbone="trunk", model="test_resnet",
...     segment="stem", channels=8, stride=2, tasks=("a", "b"), shared=True).attributes())
>>> g.add_node("a.head", **HeadFacts(label="a head", task="a", task_kind="classify", in_channels=8, num_outputs=2,
...     channels=2, stride=0, tasks=("a",)).attributes())
>>> sorted(nodes_for(g, SegmentRef("shared"))), sorted(nodes_for(g, SegmentRef("a")))
(['trunk.stem'], ['a.head'])
"""

from __future__ import annotations

import networkx as nx

from mtdsl.graph.facts import HeadFacts, NeckFacts, SegmentFacts, every_fact
from mtdsl.spec.document import Spec
from mtdsl.spec.references import SegmentRef


def nodes_for(graph: nx.DiGraph, target: SegmentRef) -> set[str]:
    """The nodes a freeze target names; an unknown target names none."""
    every = every_fact(graph)
    segments = {n: f for n, f in every.items() if isinstance(f, SegmentFacts)}
    word = target.owner if target.is_whole else None
    if word == "shared":
        return {n for n, f in segments.items() if f.shared}
    if word == "backbones":
        return set(segments)
    if word == "branches":
        return {n for n, f in segments.items() if f.kind == "branch"}
    if word == "heads":
        return {n for n, f in every.items() if isinstance(f, HeadFacts)}
    if word == "necks":
        return {n for n, f in every.items() if isinstance(f, NeckFacts)}
    necks = {n for n, f in every.items() if isinstance(f, NeckFacts) and f.neck == word}
    if necks:
        return necks
    owner, part = target.owner, target.segment
    if part == "head":
        return {n for n, f in every.items() if isinstance(f, HeadFacts) and f.task == owner}
    by_backbone = {n: f for n, f in segments.items() if f.backbone == owner}
    if by_backbone:
        return {n for n, f in by_backbone.items() if not part or f.segment == part}
    return {n for n, f in every.items() if f.kind != "input" and f.tasks == (owner,)}


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
