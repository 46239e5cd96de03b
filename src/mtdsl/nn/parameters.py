"""The parameter count of each neck and head, written onto the sharing graph as ``params``.

:func:`mtdsl.graph.build.build_graph` reads every backbone segment's size from
timm's metadata, without torch; a neck's or head's size depends on its module,
so this pass builds each one on the meta device (no memory, no compute) and
counts. The compiler runs it right after the graph is built
(:func:`mtdsl.compiler.compile_spec`); ``mtdsl check`` does not need it.

>>> from mtdsl.graph.build import build_graph
>>> from mtdsl.spec.load import load_text
>>> graph = build_graph(load_text('''model demo
... backbone trunk = timm("test_resnet")
... dataset d = synthetic()
... task a: classify(d) { classes = 3 }'''))
>>> graph.nodes["a.head"]["params"], count_parameters(graph).nodes["a.head"]["params"]  # 0 until counted
(0, 291)
"""

from __future__ import annotations

import networkx as nx
import torch

from mtdsl.graph.facts import HeadFacts, NeckFacts, every_fact
from mtdsl.nn.plan import node_call


def count_parameters(graph: nx.DiGraph) -> nx.DiGraph:
    """Set ``params`` on every neck and head node of ``graph`` (in place) and return it."""
    for node, record in every_fact(graph).items():
        if isinstance(record, (NeckFacts, HeadFacts)):
            with torch.device("meta"):
                module = node_call(record).build()
            graph.nodes[node]["params"] = sum(p.numel() for p in module.parameters())
    return graph
