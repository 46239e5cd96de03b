"""Sharing graph → Graphviz diagram (``.dot`` always; ``.svg``/``.png`` when ``dot`` is installed).

Necks are drawn as 3-D boxes (a stack of maps) and their out-edges name the
pyramid levels. Shared nodes are drawn in grey-blue with a bold border; each task has a
stable colour (by declaration order) used for its private nodes, its head and
the edges only it uses. Nodes show parameters, edges the tensor shape, and
nodes frozen in a phase get a dashed border and the phase names.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from pathlib import Path

import graphviz
import networkx as nx

from mtdsl.errors import ArtefactError
from mtdsl.graph.facts import HeadFacts, NeckFacts, NodeFacts, SegmentFacts, every_fact

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
SHARED_FILL = "#dde3ea"
SHARED_BORDER = "#2f3e4e"


def task_colours(graph: nx.DiGraph) -> dict[str, str]:
    return {task: PALETTE[i % len(PALETTE)] for i, task in enumerate(graph.graph["tasks"])}


def human(count: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def _shape_text(shape: list[int]) -> str:
    return "×".join(str(d) for d in shape)


def _edge_text(source: NodeFacts, data: dict) -> str:
    if isinstance(source, NeckFacts) and source.levels:
        return f"P{source.levels[0]}–P{source.levels[-1]} × {source.channels} ch"
    return _shape_text(data["shape"])


def _node_label(node: str, record: NodeFacts) -> str:
    title = html.escape(record.label if record.kind != "backbone" else node)
    rows = [f"<b>{title}</b>"]
    if isinstance(record, SegmentFacts):
        rows.append(f"{record.channels} ch · stride {record.stride}")
    if isinstance(record, NeckFacts):
        rows.append(f"{record.channels} ch · {record.config.get('repeats', 1)}× · strides "
                    f"{2 ** record.levels[0]}–{2 ** record.levels[-1]}")
    if isinstance(record, HeadFacts):
        rows.append(f"{html.escape(record.head['kind'])} → {record.num_outputs} ({html.escape(record.task_kind)})")
    if record.kind != "input":
        rows.append(f"{human(record.params)} params")
        if record.shared:
            rows.append(f"<i>shared: {html.escape(', '.join(record.tasks))}</i>")
    if record.frozen_in:
        rows.append(f"<font color='#1f5fa8'>frozen in: {html.escape(', '.join(record.frozen_in))}</font>")
    return "<" + "<br/>".join(rows) + ">"


def to_dot(graph: nx.DiGraph) -> graphviz.Digraph:
    colours = task_colours(graph)
    dot = graphviz.Digraph(graph.graph["name"], graph_attr={"rankdir": "TB", "fontname": "Helvetica", "labelloc": "t"})
    dot.attr(label=f"<<b>{html.escape(graph.graph['name'])}</b>  input {_shape_text(graph.graph['input'])}>")
    dot.attr("node", fontname="Helvetica", fontsize="10", style="filled", shape="box")
    dot.attr("edge", fontname="Helvetica", fontsize="9")
    every = every_fact(graph)
    for node in nx.lexicographical_topological_sort(graph):
        record = every[node]
        style = "filled,rounded" if record.kind == "head" else "filled"
        shape = "box3d" if record.kind == "neck" else "box"
        if record.frozen_in:
            style += ",dashed"
        if record.kind == "input":
            dot.node(node, _node_label(node, record), shape="oval", fillcolor="#f5f5f5")
        elif record.shared:
            dot.node(node, _node_label(node, record), fillcolor=SHARED_FILL, color=SHARED_BORDER, penwidth="2",
                     style=style, shape=shape)
        else:
            colour = colours[record.tasks[0]]
            fill = colour + ("66" if record.kind == "head" else "33")
            dot.node(node, _node_label(node, record), fillcolor=fill, color=colour, penwidth="1.5", style=style,
                     shape=shape)
    for source, target, data in sorted(graph.edges(data=True)):
        tasks = data["tasks"]
        colour = colours[tasks[0]] if len(tasks) == 1 else SHARED_BORDER
        dot.edge(source, target, label=_edge_text(every[source], data), color=colour,
                 penwidth=str(1 + 0.5 * len(tasks)))
    with dot.subgraph(name="cluster_legend") as legend:
        legend.attr(label="tasks", fontsize="10", style="dashed", color="#999999")
        for task, colour in colours.items():
            legend.node(f"legend_{task}", task, fillcolor=colour + "66", color=colour, shape="box",
                        style="filled,rounded")
    return dot


def dot_available() -> bool:
    return shutil.which("dot") is not None


def write_diagram(graph: nx.DiGraph, out_dir: Path, stem: str = "architecture") -> list[Path]:
    """Write ``stem.dot``, and ``stem.svg`` and ``stem.png`` when Graphviz is installed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dot_path = out_dir / f"{stem}.dot"
    dot_path.write_text(to_dot(graph).source, encoding="utf-8")
    written = [dot_path]
    if not dot_available():
        return written
    for fmt in ("svg", "png"):
        target = out_dir / f"{stem}.{fmt}"
        result = subprocess.run(["dot", f"-T{fmt}", str(dot_path), "-o", str(target)], capture_output=True, text=True)
        if result.returncode != 0:
            raise ArtefactError(f"Graphviz failed to draw {target}: {result.stderr.strip()}")
        written.append(target)
    return written


MISSING_DOT_HINT = "install Graphviz for .svg/.png diagrams: apt-get install graphviz (or brew install graphviz)"
