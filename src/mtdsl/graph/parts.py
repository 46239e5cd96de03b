"""Which named part of the model each parameter belongs to: the resolution behind ``lr_scale``.

The parts are the sharing graph's nodes (segments, branch copies, necks,
heads), each living at one module path (``backbone.trunk.stage4``,
``heads.shape``). A part target (``backbones``, ``trunk.stage4``, ``beans.head``;
the same words as freeze targets, :func:`mtdsl.graph.freeze.nodes_for`) names a
set of nodes; a parameter belongs to the node whose module path prefixes its
name. So the same spec words can pick parameters from Python, e.g. to give
pretrained layers a lower learning rate than new ones.

>>> import networkx as nx
>>> from mtdsl.graph.facts import HeadFacts, SegmentFacts
>>> g = nx.DiGraph()
>>> g.add_node("trunk.stem", **SegmentFacts(kind="backbone", label="stem", backbone="trunk", model="test_resnet",
...     segment="stem", channels=8, stride=2, tasks=("a",)).attributes())
>>> g.add_node("a.head", **HeadFacts(label="a head", task="a", task_kind="classify", in_channels=8, num_outputs=2,
...     channels=2, stride=0, tasks=("a",)).attributes())
>>> part_of(g, "backbone.trunk.stem.conv1.weight"), part_of(g, "heads.a.classifier.bias"), part_of(g, "other")
('trunk.stem', 'a.head', None)
>>> module_factors(g, [(SegmentRef("backbones"), 0.1), (SegmentRef("heads"), 2.0)])
{'backbone.trunk.stem': 0.1, 'heads.a': 2.0}
>>> factor_of("backbone.trunk.stem.conv1.weight", {"backbone.trunk.stem": 0.1}), factor_of("heads.a.w", {})
(0.1, 1.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

import networkx as nx

from mtdsl.graph.facts import every_fact, facts
from mtdsl.graph.freeze import nodes_for
from mtdsl.spec.references import SegmentRef

T = TypeVar("T")


def part_of(graph: nx.DiGraph, parameter: str) -> str | None:
    """The node of ``graph`` whose module holds ``parameter`` (a name from ``model.named_parameters()``).

    ``None`` for a parameter outside every part (none in a compiled model; learned loss weights
    live in their own module).
    """
    modules = _modules(graph)
    found = _module_of(parameter, modules)
    return None if found is None else found[1]


def parameter_parts(graph: nx.DiGraph, parameters: Iterable[str]) -> dict[str, str | None]:
    """:func:`part_of` for each name in ``parameters``, e.g. ``model.state_dict()``'s keys."""
    modules = _modules(graph)
    return {name: (found[1] if (found := _module_of(name, modules)) else None) for name in parameters}


def _modules(graph: nx.DiGraph) -> dict[str, str]:
    """Each node's module path (the input has none), with the node."""
    return {record.module: node for node, record in every_fact(graph).items() if record.module}


def parameters_in(graph: nx.DiGraph, target: SegmentRef, parameters: Iterable[str]) -> list[str]:
    """The names among ``parameters`` that part target ``target`` (``backbones``, ``trunk.stage4``) names."""
    nodes = nodes_for(graph, target)
    return [name for name, node in parameter_parts(graph, parameters).items() if node in nodes]


def module_factors(graph: nx.DiGraph, targets: Sequence[tuple[SegmentRef, float]]) -> dict[str, float]:
    """Each module path the ``(target, factor)`` pairs name, with its factor; a later pair wins an overlap."""
    factors: dict[str, float] = {}
    for target, factor in targets:
        for node in sorted(nodes_for(graph, target)):
            module = facts(graph, node).module
            factors.pop(module, None)  # re-inserted: the order says which pair decided it
            factors[module] = factor
    return factors


def factor_of(parameter: str, factors: Mapping[str, float]) -> float:
    """The factor of the module (from :func:`module_factors`) that holds ``parameter``; 1 outside them all."""
    found = _module_of(parameter, factors)
    return 1.0 if found is None else found[1]


def _module_of(name: str, by_module: Mapping[str, T]) -> tuple[str, T] | None:
    """The longest module path of ``by_module`` that ``name`` lies inside, with its value."""
    parts = name.split(".")
    for length in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:length])
        if prefix in by_module:
            return prefix, by_module[prefix]
    return None
