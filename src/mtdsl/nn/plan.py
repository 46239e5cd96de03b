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

from mtdsl.graph.build import module_path
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
#: The nodes that hand on a vision transformer's tokens unchanged to one another.
_SEGMENTS = ("segment", "branch")

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
    output seen as a map; see :class:`mtdsl.nn.backbone.TokenSegment`).
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
    order = [node for node in nx.lexicographical_topological_sort(graph) if graph.nodes[node]["kind"] != INPUT]
    paths: dict[str, list[str]] = graph.graph["tasks"]
    return ModulePlan(
        name=graph.graph["name"],
        input_size=tuple(graph.graph["input"]),
        tasks={
            task: TaskOutput(graph.nodes[path[-1]]["task_kind"], graph.nodes[path[-1]]["num_outputs"], tuple(path[:-1]))
            for task, path in paths.items()
        },
        backbones=tuple(
            BackboneBuild(name, config["model"], config.get("pretrained", "none"), config["drop_rate"],
                          config["drop_path_rate"])
            for name, config in graph.graph["backbones"].items()
        ),
        modules=tuple(_planned_modules(graph, order, list(paths))),
        steps=tuple(_with_map_views(graph, [_step(graph, node) for node in order])),
    )


def node_call(data: dict) -> ModuleCall:
    """The constructor call of a neck or head node."""
    if data["kind"] == "neck":
        neck = NECK_CONFIGS.get(data["config"]["kind"]).model_validate(data["config"])
        return neck_call(neck, data["in_channels"], data["in_strides"])
    if data["kind"] == "head":
        head = HEAD_CONFIGS.get(data["head"]["kind"]).model_validate(data["head"])
        return head_call(head, data["in_channels"], data["num_outputs"], data.get("num_levels", 1))
    raise ValueError(f"a {data['kind']} node is not built by a constructor call")


def place(data: dict) -> tuple[str, ...]:
    """Where a node's module lives in the model: :func:`mtdsl.graph.build.module_path`, the function whose
    dotted form is the graph's ``module`` attribute, which freezing and ``lr_scale`` read."""
    return module_path(data)


def _planned_modules(graph: nx.DiGraph, order: list[str], tasks: list[str]):
    """Shared segments grouped by backbone, then private copies grouped by owner, then necks, then heads by task."""
    nodes = [graph.nodes[node] for node in order]
    backbones = list(graph.graph["backbones"])
    for data in sorted((d for d in nodes if d["kind"] == "segment"), key=lambda d: backbones.index(d["backbone"])):
        yield PlannedModule(place(data), SegmentOf(data["backbone"], data["segment"], copy=False))
    for data in sorted((d for d in nodes if d["kind"] == "branch"), key=lambda d: tasks.index(d["owner"])):
        yield PlannedModule(place(data), SegmentOf(data["backbone"], data["segment"], copy=True))
    for data in nodes:
        if data["kind"] == "neck":
            yield PlannedModule(place(data), node_call(data))
    for data in sorted((d for d in nodes if d["kind"] == "head"), key=lambda d: tasks.index(d["task"])):
        yield PlannedModule(place(data), node_call(data))


def _step(graph: nx.DiGraph, node: str) -> Step:
    data = graph.nodes[node]
    inputs = tuple(data.get("inputs") or graph.predecessors(node))
    if data["kind"] == "neck":
        reads: Reads = "maps"
    elif graph.nodes[inputs[0]]["kind"] == "neck":
        reads = "pyramid"
    else:
        reads = "map"
    task = data["task"] if data["kind"] == "head" else None
    return Step(node, place(data), inputs, reads, tuple(data["tasks"]), task)


def _with_map_views(graph: nx.DiGraph, steps: list[Step]) -> list[Step]:
    """The steps, with a view step before the first step other than a segment that reads a token segment.

    The view runs for the tasks of the steps that read it, and they read the view instead.
    """
    readers: dict[str, set[str]] = {}
    for step in steps:
        if graph.nodes[step.node]["kind"] not in _SEGMENTS:
            for name in step.inputs:
                if graph.nodes[name].get("tokens"):
                    readers.setdefault(name, set()).update(step.tasks)
    viewed: set[str] = set()
    result = []
    for step in steps:
        if graph.nodes[step.node]["kind"] not in _SEGMENTS and readers.keys() & set(step.inputs):
            for name in step.inputs:
                if name in readers and name not in viewed:
                    viewed.add(name)
                    tasks = tuple(sorted(readers[name]))
                    result.append(Step(name + MAP_VIEW, place(graph.nodes[name]), (name,), "tokens", tasks))
            step = replace(step, inputs=tuple(name + MAP_VIEW if name in readers else name for name in step.inputs))
        result.append(step)
    return result
