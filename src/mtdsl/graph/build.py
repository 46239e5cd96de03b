"""Validated spec → sharing graph (a ``networkx.DiGraph``).

Nodes are the input, backbone segments (shared), task-private segment copies,
necks and heads. A neck has one parent per backbone map it reads. Each node carries
everything needed to build its module, so the model compiler reads only the graph:

==========  ==============================================================
attribute   meaning
==========  ==============================================================
kind        ``input`` | ``segment`` | ``branch`` | ``neck`` | ``head``
module      where the module lives in the model, e.g. ``branches.a.stage4``
inputs      a neck's parents in the order it reads them (finest first)
tasks       sorted names of the tasks whose path runs through the node
shared      used by two tasks or more
channels    output channels; ``stride`` its reduction from the input
tokens      a segment of a vision transformer: it outputs tokens, which the next
            segment reads as they are and anything else as a map (see :mod:`mtdsl.nn.plan`)
params      parameter count (of necks and heads: written by :mod:`mtdsl.nn.parameters`)
frozen_in   phases that freeze it (written by :mod:`mtdsl.graph.freeze`)
==========  ==============================================================

Edges carry the tensor ``shape`` (C, H, W) flowing along them.

Building the graph needs no torch: it first runs the graph stage's checks
(:mod:`mtdsl.graph.checks`, most of them on timm's metadata), then reads channels, strides
and segment sizes from that metadata (:mod:`mtdsl.graph.backbones`, cached
in a file). A neck's or head's parameter count depends on its module, so
:func:`mtdsl.nn.parameters.count_parameters`, a pass of the layer that builds
modules, adds it: the compiler runs it next. ``mtdsl check`` runs only the
first line of :func:`build_graph`, all of it that can fail.
"""

from __future__ import annotations

import math

import networkx as nx

from mtdsl.graph.backbones import TOKENS, backbone_info
from mtdsl.graph.checks import run_graph_checks
from mtdsl.graph.freeze import mark_frozen
from mtdsl.graph.node_keys import HeadNode, NeckNode, NodeKey, SegmentNode
from mtdsl.graph.paths import neck_inputs, task_paths
from mtdsl.spec.document import Spec

INPUT = "input"


def build_graph(spec: Spec) -> nx.DiGraph:
    """The sharing graph of a checked spec.

    Example: two tasks on ``test_resnet``, ``b`` branching at ``stage3``::

        input → trunk.stem → … → trunk.stage3 → trunk.stage4 → a.head
                                             ↘ b/trunk.stage4 → b.head
    """
    keys = task_paths(run_graph_checks(spec))  # all that can fail: mtdsl check stops here
    graph = nx.DiGraph(name=spec.name, input=list(spec.model.input.size))
    channels, height, width = spec.model.input.size
    graph.add_node(INPUT, kind="input", label="input", channels=channels, stride=1, params=0, module="")
    for path in keys.values():
        previous = INPUT
        for key in path:
            node = key.id
            if node not in graph:
                graph.add_node(node, **_node_attributes(spec, key, graph.nodes[previous]))
            for parent in graph.nodes[node].get("inputs", [previous]):
                graph.add_edge(parent, node)
            previous = node
    paths = {task: [key.id for key in path] for task, path in keys.items()}
    for node, data in graph.nodes(data=True):
        data["tasks"] = sorted(task for task, path in paths.items() if node in path or node == INPUT)
        data["shared"] = len(data["tasks"]) > 1
    for source, target, data in graph.edges(data=True):
        stride = graph.nodes[source]["stride"]
        size = [1, 1] if graph.nodes[source].get("pooled") else [math.ceil(height / stride), math.ceil(width / stride)]
        data["shape"] = [graph.nodes[source]["channels"], *size]
        data["tasks"] = sorted(set(graph.nodes[source]["tasks"]) & set(graph.nodes[target]["tasks"]))
    graph.graph["tasks"] = {task: path for task, path in paths.items()}
    graph.graph["backbones"] = {
        name: {"model": b.model, "pretrained": b.pretrained, "drop_rate": b.drop_rate,
               "drop_path_rate": b.drop_path_rate}
        for name, b in spec.model.backbones.items()
    }
    graph.graph["phases"] = [phase.name for phase in spec.train.phases]
    mark_frozen(graph, spec)
    return graph


def _node_attributes(spec: Spec, key: NodeKey, parent: dict) -> dict:
    if isinstance(key, HeadNode):
        return _head_attributes(spec, key.task, parent)
    if isinstance(key, NeckNode):
        return _neck_attributes(spec, key.neck)
    return _segment_attributes(spec, key)


def module_path(data: dict) -> tuple[str, ...]:
    """Where the module of a node with these attributes lives in the model, as attribute names.

    The one place it is said: :func:`build_graph` writes it dotted as the ``module`` attribute
    (which freezing, ``lr_scale`` and the summary read) and the module plan builds the model there.

    >>> module_path({"kind": "branch", "owner": "b", "backbone": "trunk", "segment": "stage4"})
    ('branches', 'b', 'stage4')
    """
    kind = data["kind"]
    if kind == "segment":
        return ("backbone", data["backbone"], data["segment"])
    if kind == "branch":
        return ("branches", data["owner"], data["segment"])
    if kind == "neck":
        return ("necks", data["neck"])
    if kind == "head":
        return ("heads", data["task"])
    raise ValueError(f"a {kind} node has no module")


def _with_module(attributes: dict) -> dict:
    return {**attributes, "module": ".".join(module_path(attributes))}


def _segment_attributes(spec: Spec, key: SegmentNode) -> dict:
    owner, backbone, segment = key.owner, key.backbone, key.segment
    config = spec.model.backbones[backbone]
    backbone_read = backbone_info(config.model)
    info = backbone_read.segment(segment)
    return _with_module({
        "kind": "branch" if owner else "segment",
        "label": f"{segment}" if not owner else f"{segment} ({owner})",
        "backbone": backbone,
        "model": config.model,
        "segment": segment,
        "owner": owner,
        "timm_modules": list(info.timm_modules),
        "channels": info.channels,
        "stride": info.reduction,
        **({"pooled": True} if info.pooled else {}),
        **({"tokens": True} if backbone_read.layout == TOKENS else {}),
        "params": info.parameters,
    })


def _neck_attributes(spec: Spec, neck: str) -> dict:
    config = spec.model.necks[neck]
    info = backbone_info(spec.model.backbones[config.backbone].model)
    inputs = neck_inputs(spec, neck)
    segments = [info.segment(node.segment) for node in inputs]
    return _with_module({
        "kind": "neck",
        "label": f"{neck}: {config.kind} P{config.min_level}–P{config.max_level}",
        "neck": neck,
        "config": config.model_dump(),
        "inputs": [node.id for node in inputs],
        "in_channels": [segment.channels for segment in segments],
        "in_strides": [segment.reduction for segment in segments],
        "levels": config.levels,
        "channels": config.channels,
        "stride": 2**config.min_level,
    })


def _head_attributes(spec: Spec, task: str, parent: dict) -> dict:
    model_task = spec.model.tasks[task]
    in_channels = parent["channels"]
    num_levels = len(parent.get("levels", [])) or 1
    return _with_module({
        "kind": "head",
        "label": f"{task} head",
        "task": task,
        "task_kind": model_task.kind,
        "head": model_task.head.model_dump(),
        "in_channels": in_channels,
        **({"num_levels": num_levels} if model_task.head.reads == "pyramid" else {}),
        "num_outputs": model_task.num_outputs,
        "classes": list(model_task.classes or []),
        "channels": model_task.num_outputs,
        "stride": 0,
    })
