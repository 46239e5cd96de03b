"""Sharing graph → module plan: what a model is made of, and how a batch flows through it.

One pass over the graph decides both halves of a model, once:

* ``modules``: each module's place in the model (which fixes its ``state_dict``
  keys) and how it is made: a segment of a built backbone, a deep copy of one
  (a task's private branch, never an alias), or a constructor call (necks and
  heads, :class:`~mtdsl.nn.module_call.ModuleCall`);
* ``steps``: the forward pass in topological order: which module reads which
  values, how it reads them, and which tasks need it.

A vision transformer's segments (graph attribute ``tokens``) hand on tokens,
class and register tokens included, to the next segment, its own or a task's
copy. Whatever else reads one (a neck, a head) reads its tokens as a map on
the patch grid, as timm's ``forward_intermediates`` returns them: a step
``<node>:map`` (``reads="tokens"``) before its first reader makes that view.
A backbone run whole (graph attribute ``whole``) hands on the list of all its
maps the same way, and the view picks the segment's own.

:class:`mtdsl.nn.model.MultiTaskModel` builds and runs the plan;
:mod:`mtdsl.codegen.model_source` prints the same plan as ``model.py``. So the two
cannot drift apart, and a test checks they give bit-identical outputs for every spec.

Places (``state_dict`` key prefixes):

* ``backbone.<backbone>.<segment>``: shared segments,
* ``branches.<task>.<segment>``: a task's private copies,
* ``necks.<neck>``: feature pyramids, each reading several backbone maps,
* ``heads.<task>``: heads.

>>> from mtdsl.compiler import compile_spec
>>> from mtdsl.spec.load import load_text
>>> plan = module_plan(compile_spec(load_text('''model demo
... backbone trunk = timm("test_resnet")
... dataset d = synthetic()
... task a: classify(d) { classes = 2 }
... task b: classify(d) { classes = 2; branch = trunk.stage3 }''')).graph)
>>> [".".join(m.place) for m in plan.modules if m.place[0] != "backbone"]
['branches.b.stage4', 'heads.a', 'heads.b']
>>> next(step for step in plan.steps if step.task == "b")
Step(node='b.head', place=('heads', 'b'), inputs=('b/trunk.stage4',), reads='map', tasks=('b',), task='b')
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import networkx as nx
from torch import nn

from mtdsl.graph.facts import HeadFacts, NeckFacts, NodeFacts, SegmentFacts, every_fact
from mtdsl.nn.heads import head_call
from mtdsl.nn.module_call import ModuleCall
from mtdsl.nn.necks import neck_call
from mtdsl.nn.pretrained import pretrained_segments
from mtdsl.spec.heads import HEAD_CONFIGS
from mtdsl.spec.necks import NECK_CONFIGS

#: The model's top-level containers, in the order they are built.
CONTAINERS = ("backbone", "branches", "necks", "heads")
INPUT = "input"
#: What a view step's node adds to its segment's: ``trunk.stage4:map`` is ``trunk.stage4``'s tokens as a map.
MAP_VIEW = ":map"

Reads = Literal["map", "maps", "pyramid", "tokens"]


@dataclass(frozen=True)
class BackboneBuild:
    """A timm backbone cut into segments, with the weights its spec names."""

    name: str
    model: str
    pretrained: str
    drop_rate: float
    drop_path_rate: float

    def build(self, load_pretrained: bool = True) -> nn.ModuleDict:
        return pretrained_segments(
            self.model,
            self.pretrained if load_pretrained else "none",
            drop_rate=self.drop_rate,
            drop_path_rate=self.drop_path_rate,
        )


@dataclass(frozen=True)
class SegmentOf:
    """A segment of a built backbone: the shared module itself, or (``copy``) a task's own deep copy."""

    backbone: str
    segment: str
    copy: bool


@dataclass(frozen=True)
class PlannedModule:
    place: tuple[str, ...]
    made: SegmentOf | ModuleCall


@dataclass(frozen=True)
class Step:
    """One module call of the forward pass.

    ``reads``: ``map`` calls ``module(value)``; ``maps`` calls ``module([values…])`` (a neck,
    finest map first); ``pyramid`` calls ``module(pyramid, image_size)`` (a dense head);
    ``tokens`` calls ``module.as_map(tokens, image_size)`` (a vision transformer segment's
    output seen as a map, :class:`mtdsl.nn.backbone.TokenSegment`; or a whole-run backbone's
    maps, of which it picks the segment's own, :class:`mtdsl.nn.backbone.WholeTap`).
    ``task`` is set on a head's step: its value is that task's output.
    """

    node: str
    place: tuple[str, ...]
    inputs: tuple[str, ...]
    reads: Reads
    tasks: tuple[str, ...]
    task: str | None = None


@dataclass(frozen=True)
class TaskOutput:
    """What a task's head returns, for the generated module's docstring."""

    kind: str
    num_outputs: int
    path: tuple[str, ...]


@dataclass(frozen=True)
class ModulePlan:
    name: str
    input_size: tuple[int, ...]
    tasks: dict[str, TaskOutput]
    backbones: tuple[BackboneBuild, ...]
    modules: tuple[PlannedModule, ...]
    steps: tuple[Step, ...]


def module_plan(graph: nx.DiGraph) -> ModulePlan:
    """The plan of the model a graph describes (from :func:`mtdsl.graph.build.build_graph` or ``graph.json``)."""
    every = every_fact(graph)
    order = [node for node in nx.lexicographical_topological_sort(graph) if every[node].kind != INPUT]
    paths: dict[str, list[str]] = graph.graph["tasks"]
    return ModulePlan(
        name=graph.graph["name"],
        input_size=tuple(graph.graph["input"]),
        tasks={task: _task_output(every[path[-1]], path) for task, path in paths.items()},
        backbones=tuple(
            BackboneBuild(name, config["model"], config.get("pretrained", "none"), config["drop_rate"],
                          config["drop_path_rate"])
            for name, config in graph.graph["backbones"].items()
        ),
        modules=tuple(_planned_modules([every[node] for node in order], list(graph.graph["backbones"]), list(paths))),
        steps=tuple(_with_map_views(every, [_step(graph, every, node) for node in order])),
    )


def _task_output(head: NodeFacts, path: list[str]) -> TaskOutput:
    assert isinstance(head, HeadFacts)  # every task's path ends at its head
    return TaskOutput(head.task_kind, head.num_outputs, tuple(path[:-1]))


def node_call(record: NodeFacts) -> ModuleCall:
    """The constructor call of a neck or head node."""
    if isinstance(record, NeckFacts):
        neck = NECK_CONFIGS.get(record.config["kind"]).model_validate(record.config)
        return neck_call(neck, list(record.in_channels), list(record.in_strides))
    if isinstance(record, HeadFacts):
        head = HEAD_CONFIGS.get(record.head["kind"]).model_validate(record.head)
        return head_call(head, record.in_channels, record.num_outputs, record.num_levels or 1)
    raise ValueError(f"a {record.kind} node is not built by a constructor call")


def _planned_modules(records: list[NodeFacts], backbones: list[str], tasks: list[str]):
    """Shared segments grouped by backbone, then private copies grouped by owner, then necks, then heads by task."""
    segments = [record for record in records if isinstance(record, SegmentFacts)]
    for segment in sorted((s for s in segments if s.kind == "backbone"), key=lambda s: backbones.index(s.backbone)):
        yield PlannedModule(segment.place, SegmentOf(segment.backbone, segment.segment, copy=False))
    for segment in sorted((s for s in segments if s.kind == "branch"), key=lambda s: tasks.index(s.owner or "")):
        yield PlannedModule(segment.place, SegmentOf(segment.backbone, segment.segment, copy=True))
    for record in records:
        if isinstance(record, NeckFacts):
            yield PlannedModule(record.place, node_call(record))
    heads = [record for record in records if isinstance(record, HeadFacts)]
    for head in sorted(heads, key=lambda h: tasks.index(h.task)):
        yield PlannedModule(head.place, node_call(head))


def _step(graph: nx.DiGraph, every: dict[str, NodeFacts], node: str) -> Step:
    record = every[node]
    inputs = record.inputs if isinstance(record, NeckFacts) else tuple(graph.predecessors(node))
    if isinstance(record, NeckFacts):
        reads: Reads = "maps"
    elif isinstance(every[inputs[0]], NeckFacts):
        reads = "pyramid"
    else:
        reads = "map"
    task = record.task if isinstance(record, HeadFacts) else None
    return Step(node, record.place, inputs, reads, record.tasks, task)


def _with_map_views(every: dict[str, NodeFacts], steps: list[Step]) -> list[Step]:
    """The steps, with a view step before the first step other than a segment that reads a token segment
    (or a segment of a backbone run whole).

    The view runs for the tasks of the steps that read it, and they read the view instead.
    """
    def tokens(name: str) -> bool:
        record = every[name]
        return isinstance(record, SegmentFacts) and record.viewed

    readers: dict[str, set[str]] = {}
    for step in steps:
        if not isinstance(every[step.node], SegmentFacts):
            for name in step.inputs:
                if tokens(name):
                    readers.setdefault(name, set()).update(step.tasks)
    viewed: set[str] = set()
    result = []
    for step in steps:
        if not isinstance(every[step.node], SegmentFacts) and readers.keys() & set(step.inputs):
            for name in step.inputs:
                if name in readers and name not in viewed:
                    viewed.add(name)
                    tasks = tuple(sorted(readers[name]))
                    result.append(Step(name + MAP_VIEW, every[name].place, (name,), "tokens", tasks))
            step = replace(step, inputs=tuple(name + MAP_VIEW if name in readers else name for name in step.inputs))
        result.append(step)
    return result
