"""Sharing graph ↔ ``graph.json``: stable (sorted keys and nodes), diff-friendly.

>>> import networkx as nx
>>> g = nx.DiGraph(name="demo"); g.add_edge("input", "trunk.stem", shape=[3, 64, 64])
>>> graph_from_json(graph_to_json(g)).edges["input", "trunk.stem"]["shape"]
[3, 64, 64]
"""

from __future__ import annotations

import json

import networkx as nx

FORMAT_VERSION = 1


def graph_to_json(graph: nx.DiGraph) -> str:
    data = nx.node_link_data(graph, edges="edges")
    data["nodes"] = sorted(data["nodes"], key=lambda node: node["id"])
    data["edges"] = sorted(data["edges"], key=lambda edge: (edge["source"], edge["target"]))
    data["format_version"] = FORMAT_VERSION
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def graph_from_json(text: str) -> nx.DiGraph:
    data = json.loads(text)
    data.pop("format_version", None)
    return nx.node_link_graph(data, edges="edges", directed=True)
