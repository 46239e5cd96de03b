"""Validated spec → sharing graph (a ``networkx.DiGraph``).

Nodes are the input, backbone segments (kind ``backbone``: shared), task-private
segment copies (``branch``), necks and heads. A neck has one parent per backbone map
it reads. Each node carries everything needed to build its module, so the model
compiler reads only the graph; what a node of each kind holds is its record in
:mod:`mtdsl.graph.facts` (written here with :meth:`~mtdsl.graph.facts.NodeFacts.attributes`,
read back with :func:`~mtdsl.graph.facts.facts`), among them:

==========  ==============================================================
fact        meaning
==========  ==============================================================
kind        ``input`` | ``backbone`` | ``branch`` | ``neck`` | ``head``
module      where the module lives in the model, e.g. ``branches.a.stage4``
inputs      a neck's parents in the order it reads them (finest first)
tasks       sorted names of the tasks whose path runs through the node
shared      used by two tasks or more
channels    output channels; ``stride`` its reduction from the input
tokens      a segment of a vision transformer: it outputs tokens, which the next
            segment reads as they are and anything else as a map (see :mod:`mtdsl.nn.plan`)
whole       a segment of a backbone run whole: the first runs timm's whole extractor, the
            others hand its maps on; a reader other than a segment reads the segment's map
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
from mtdsl.graph.facts import HeadFacts, InputFacts, NeckFacts, NodeFacts, SegmentFacts, every_fact, facts
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
    graph.add_node(INPUT, **InputFacts(label="input", channels=channels, stride=1).attributes())
    for path in keys.values():
        previous = INPUT
        for key in path:
            node = key.id
            if node not in graph:
                graph.add_node(node, **_node_facts(spec, key, facts(graph, previous)).attributes())
            record = facts(graph, node)
            for parent in record.inputs if isinstance(record, NeckFacts) else [previous]:
                graph.add_edge(parent, node)
            previous = node
    paths = {task: [key.id for key in path] for task, path in keys.items()}
    for node, data in graph.nodes(data=True):
        data["tasks"] = sorted(task for task, path in paths.items() if node in path or node == INPUT)
        data["shared"] = len(data["tasks"]) > 1
    every = every_fact(graph)
    for source, target, data in graph.edges(data=True):
        origin = every[source]
        pooled = isinstance(origin, SegmentFacts) and origin.pooled
        size = [1, 1] if pooled else [math.ceil(height / origin.stride), math.ceil(width / origin.stride)]
        data["shape"] = [origin.channels, *size]
        data["tasks"] = sorted(set(origin.tasks) & set(every[target].tasks))
    graph.graph["tasks"] = {task: path for task, path in paths.items()}
    graph.graph["backbones"] = {
        name: {"model": b.model, "pretrained": b.pretrained, "drop_rate": b.drop_rate,
               "drop_path_rate": b.drop_path_rate}
        for name, b in spec.model.backbones.items()
    }
    graph.graph["phases"] = [phase.name for phase in spec.train.phases]
    mark_frozen(graph, spec)
    return graph


def _node_facts(spec: Spec, key: NodeKey, parent: NodeFacts) -> NodeFacts:
    if isinstance(key, HeadNode):
        return _head_facts(spec, key.task, parent)
    if isinstance(key, NeckNode):
        return _neck_facts(spec, key.neck)
    return _segment_facts(spec, key)


def _segment_facts(spec: Spec, key: SegmentNode) -> SegmentFacts:
    owner, backbone, segment = key.owner, key.backbone, key.segment
    config = spec.model.backbones[backbone]
    backbone_read = backbone_info(config.model)
    info = backbone_read.segment(segment)
    return SegmentFacts(
        kind="branch" if owner else "backbone",
        label=f"{segment}" if not owner else f"{segment} ({owner})",
        backbone=backbone,
        model=config.model,
        segment=segment,
        owner=owner,
        timm_modules=tuple(info.timm_modules),
        channels=info.channels,
        stride=info.reduction,
        pooled=info.pooled,
        tokens=backbone_read.layout == TOKENS,
        whole=backbone_read.whole,
        params=info.parameters,
    )


def _neck_facts(spec: Spec, neck: str) -> NeckFacts:
    config = spec.model.necks[neck]
    info = backbone_info(spec.model.backbones[config.backbone].model)
    inputs = neck_inputs(spec, neck)
    segments = [info.segment(node.segment) for node in inputs]
    return NeckFacts(
        label=f"{neck}: {config.kind} P{config.min_level}–P{config.max_level}",
        neck=neck,
        config=config.model_dump(),
        inputs=tuple(node.id for node in inputs),
        in_channels=tuple(segment.channels for segment in segments),
        in_strides=tuple(segment.reduction for segment in segments),
        levels=tuple(config.levels),
        channels=config.channels,
        stride=2**config.min_level,
    )


def _head_facts(spec: Spec, task: str, parent: NodeFacts) -> HeadFacts:
    model_task = spec.model.tasks[task]
    levels = parent.levels if isinstance(parent, NeckFacts) else ()
    return HeadFacts(
        label=f"{task} head",
        task=task,
        task_kind=model_task.kind,
        head=model_task.head.model_dump(),
        in_channels=parent.channels,
        num_levels=(len(levels) or 1) if model_task.head.reads == "pyramid" else None,
        num_outputs=model_task.num_outputs,
        classes=tuple(model_task.classes or ()),
        channels=model_task.num_outputs,
        stride=0,
    )
