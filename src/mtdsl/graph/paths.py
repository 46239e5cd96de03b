"""Which segment instances each task runs through, from its ``branch`` and ``tap``.

A task whose head reads a pyramid (``tap = NECK``) runs the shared backbone up
to the neck's coarsest input, then the neck. A task with ``branch = trunk.stage2`` shares ``stem..stage2`` and owns a
private copy of every later segment up to its tap. A task may also branch off
another task (``branch = beans.stage3``): it then shares that task's path,
private copies included, up to ``stage3``. Such references must not form a
cycle.

>>> from mtdsl.spec.load import load_text
>>> spec = load_text('''model demo
... backbone trunk = timm("test_resnet")
... dataset d = synthetic()
... task a: classify(d) { classes = 2 }
... task b: classify(d) { classes = 2; branch = trunk.stage3 }''')
>>> task_paths(spec)["b"][-3:]
['trunk.stage3', 'b/trunk.stage4', 'b.head']
"""

from __future__ import annotations

import networkx as nx

from mtdsl.errors import GraphError
from mtdsl.nn.backbone import backbone_info
from mtdsl.nn.necks.wiring import pyramid_inputs
from mtdsl.spec.document import Spec


def shared_node(backbone: str, segment: str) -> str:
    return f"{backbone}.{segment}"


def private_node(owner: str, backbone: str, segment: str) -> str:
    return f"{owner}/{backbone}.{segment}"


def head_node(task: str) -> str:
    return f"{task}.head"


def neck_node(neck: str) -> str:
    return neck


def neck_inputs(spec: Spec, neck: str) -> list[str]:
    """The shared segments whose maps feed ``neck``: those at strides ``2**min_level …``, finest first."""
    config = spec.model.necks[neck]
    stages = backbone_info(spec.model.backbones[config.backbone].model).stages
    indices = pyramid_inputs([stage.reduction for stage in stages], config.min_level, config.max_level)
    return [shared_node(config.backbone, stages[i].name) for i in indices]


def branch_order(spec: Spec) -> list[str]:
    """Tasks ordered so that a task comes after the task it branches off; cycles are errors."""
    dependencies = nx.DiGraph()
    dependencies.add_nodes_from(spec.model.tasks)
    for name, task in spec.model.tasks.items():
        for reference in (task.branch, task.tap):
            owner = (reference or "").split(".")[0]
            if owner in spec.model.tasks and owner != name:
                dependencies.add_edge(owner, name)
    try:
        cycle = nx.find_cycle(dependencies)
    except nx.NetworkXNoCycle:
        return list(nx.lexicographical_topological_sort(dependencies, key=list(spec.model.tasks).index))
    # Edges run from a task to the tasks that branch off it; read the loop the other way, as
    # "first → the task it branches off → …", starting at the task declared first.
    order = list(spec.model.tasks)
    tasks = [edge[1] for edge in cycle][::-1]
    start = min(range(len(tasks)), key=lambda i: order.index(tasks[i]))
    tasks = tasks[start:] + tasks[:start]
    first = spec.model.tasks[tasks[0]]
    key = "branch" if (first.branch or "").split(".")[0] == tasks[1] else "tap"
    loop = " → ".join(tasks + [tasks[0]])
    raise GraphError(
        f"tasks branch off each other in a cycle: {loop}",
        spec.span("task", tasks[0], key) or spec.span("task", tasks[0]),
        source=spec.source,
        expected="each task branches off a backbone, or off a task that does not lead back to it",
        hint=f"let one of them branch off a backbone, e.g. branch = {next(iter(spec.model.backbones), 'trunk')}.stage3",
    )


def root_backbones(spec: Spec, order: list[str]) -> dict[str, str]:
    roots: dict[str, str] = {}
    for name in order:
        task = spec.model.tasks[name]
        owner = (task.branch or task.tap or "").split(".")[0]
        roots[name] = roots[owner] if owner in spec.model.tasks and owner != name else task.backbone
    return roots


def task_paths(spec: Spec) -> dict[str, list[str]]:
    """Node ids from the first segment to the head, per task, in declaration order."""
    order = branch_order(spec)
    roots = root_backbones(spec, order)
    paths: dict[str, list[str]] = {}
    for name in order:
        task = spec.model.tasks[name]
        if task.neck is not None:
            feeding = neck_inputs(spec, task.neck)
            segments = backbone_info(spec.model.backbones[task.backbone].model).names
            last = segments.index(feeding[-1].partition(".")[2])
            shared = [shared_node(task.backbone, s) for s in segments[: last + 1]]
            paths[name] = shared + [neck_node(task.neck), head_node(name)]
            continue
        backbone = roots[name]
        segments = backbone_info(spec.model.backbones[backbone].model).names
        tap_owner, _, tap_segment = (task.tap or "").partition(".")
        tap = segments.index(tap_segment) if tap_segment else len(segments) - 1
        branch_owner, _, branch_segment = (task.branch or "").partition(".")
        branch = segments.index(branch_segment) if branch_segment else len(segments) - 1
        if task.branch and tap_segment and branch > tap:
            raise GraphError(
                f"task '{name}' branches at {branch_segment} but stops earlier, at tap = {task.tap}",
                spec.span("task", name, "branch"),
                source=spec.source,
                hint=f"remove 'branch' (the task shares everything up to {tap_segment}) or branch at {tap_segment} or earlier",
            )
        owner, key = (branch_owner, "branch") if task.branch else (tap_owner, "tap")
        if owner in spec.model.tasks and owner != name:
            if not task.branch:
                branch = tap
            prefix = paths[owner][:-1]
            if branch >= len(prefix):
                raise GraphError(
                    f"task '{name}' follows '{owner}' to {segments[branch]}, "
                    f"but '{owner}' stops at {segments[len(prefix) - 1]}",
                    spec.span("task", name, key),
                    source=spec.source,
                    hint=f"use {owner}.{segments[len(prefix) - 1]} or an earlier segment",
                )
            prefix = prefix[: branch + 1]
        else:
            prefix = [shared_node(backbone, s) for s in segments[: branch + 1]]
        path = prefix[: tap + 1] + [private_node(name, backbone, s) for s in segments[branch + 1 : tap + 1]]
        paths[name] = path + [head_node(name)]
    return {name: paths[name] for name in spec.model.tasks}
