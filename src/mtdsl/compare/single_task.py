"""A multi-task spec → one single-task spec per task: the model each task would be without sharing.

A task's counterpart keeps everything the task itself says: its backbone
(the one its path starts from, also when it branches off another task), the
backbone's pretrained source, its head, neck, loss, datasets, input size,
batch size, optimiser, schedule and phases. It loses only the sharing: no
``branch``, a ``tap`` that named another task's segment names the same segment
of the backbone, and ``crops`` (other tasks) are dropped.

Each phase freezes in the single-task model exactly the parts of this task's
path that it froze in the multi-task one, written out by name (``shared`` in
the multi-task spec becomes the shared segments of this task's path); each
part keeps its ``lr_scale`` factor the same way.

>>> from mtdsl.compiler import compile_text
>>> spec = compile_text('''model demo
... backbone trunk = timm("test_resnet")
... dataset d = synthetic()
... task a: classify(d) { classes = 2 }
... task b: classify(d) { classes = 3; branch = a.stage3 }
... train { phase heads { epochs = 1; freeze = [shared] } }''').spec
>>> single = single_task_specs(spec)
>>> single["b"].model.tasks["b"].branch, [str(target) for target in single["b"].train.phases[0].freeze]
(None, ['trunk.stem', 'trunk.stage1', 'trunk.stage2', 'trunk.stage3'])
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import networkx as nx

from mtdsl.graph.build import build_graph
from mtdsl.graph.facts import HeadFacts, NeckFacts, NodeFacts, SegmentFacts, facts
from mtdsl.graph.parts import module_factors
from mtdsl.graph.paths import branch_order, root_backbones
from mtdsl.spec.document import Spec
from mtdsl.spec.model import TaskSpec
from mtdsl.spec.references import SegmentRef
from mtdsl.spec.training import LrScaleConfig, ProportionalSampling


def single_task_specs(spec: Spec, graph: nx.DiGraph | None = None) -> dict[str, Spec]:
    """Each task's single-task counterpart, keyed by task name, in the spec's task order."""
    graph = graph if graph is not None else build_graph(spec)
    roots = root_backbones(spec, branch_order(spec))
    return {name: _single(spec, graph, name, roots[name]) for name in spec.model.tasks}


def _single(spec: Spec, graph: nx.DiGraph, name: str, backbone: str) -> Spec:
    task = spec.model.tasks[name]
    training = spec.train.tasks[name]
    necks = {task.neck: spec.model.necks[task.neck]} if task.neck else {}
    model = spec.model.model_copy(update={
        "name": f"{spec.model.name}_{name}",
        "backbones": {backbone: spec.model.backbones[backbone]},
        "necks": necks,
        "tasks": {name: _unshared(task, backbone, set(spec.model.tasks))},
    })
    sampling = spec.train.sampling if spec.train.sampling.kind == "dynamic" else ProportionalSampling()
    train = spec.train.model_copy(update={
        "tasks": {name: training},
        "sampling": sampling,
        "lr_scale": _scaled_targets(graph, name, spec.train.lr_scale),
        "phases": [phase.model_copy(update={"freeze": _frozen_targets(graph, name, phase.name),
                                            "lr_scale": _scaled_targets(graph, name, phase.lr_scale)})
                   for phase in spec.train.phases],
    })
    datasets = {dataset: spec.datasets[dataset] for dataset in training.datasets}
    return replace(spec, model=model, train=train, datasets=datasets)


def _unshared(task: TaskSpec, backbone: str, tasks: set[str]) -> TaskSpec:
    tap = task.tap
    if tap is not None and tap.owner in tasks:
        tap = SegmentRef(backbone, tap.segment)
    return task.model_copy(update={"backbone": backbone, "branch": None, "tap": tap, "crops": []})


def _frozen_targets(graph: nx.DiGraph, task: str, phase: str) -> list[SegmentRef]:
    """The nodes of ``task``'s path that ``phase`` freezes, as freeze targets of the single-task spec."""
    path = [facts(graph, node) for node in graph.graph["tasks"][task]]
    return [target for record in path if phase in record.frozen_in and (target := _target(record, task))]


def _scaled_targets(graph: nx.DiGraph, task: str,
                    scale: LrScaleConfig | Literal["auto"] | None) -> LrScaleConfig | Literal["auto"] | None:
    """The factor ``scale`` gives each node of ``task``'s path, as ``lr_scale`` of the single-task spec.

    The multi-task words (``shared``, another task's ``head``) name other parts there, so each node is
    written out by name with the factor it had, as :func:`_frozen_targets` writes frozen ones.
    """
    if scale is None or scale == "auto":  # auto: the single-task model's backbone is as pretrained as here
        return scale
    factors = module_factors(graph, scale.targets)
    path = [facts(graph, node) for node in graph.graph["tasks"][task]]
    written = {str(target): factors[record.module] for record in path
               if record.module in factors and (target := _target(record, task))}
    return LrScaleConfig(factors=written) if written else None


def _target(record: NodeFacts, task: str) -> SegmentRef | None:
    """A node of ``task``'s path as a part target of the single-task spec (``None`` for the input)."""
    if isinstance(record, SegmentFacts):
        return SegmentRef(record.backbone, record.segment)
    if isinstance(record, NeckFacts):
        return SegmentRef(record.neck)
    if isinstance(record, HeadFacts):
        return SegmentRef(task, "head")
    return None
