"""Which segment instances each task runs through, from its ``branch`` and ``tap``.

A task whose head reads a pyramid (``tap = NECK``) runs the shared backbone up
to the neck's coarsest input, then the neck. A task with ``branch = trunk.stage2`` shares ``stem..stage2`` and owns a
private copy of every later segment up to its tap. A task may also branch off
another task (``branch = beans.stage3``): it then shares that task's path,
private copies included, up to ``stage3``. Such references must not form a
cycle (:func:`mtdsl.spec.branches.branch_order`, checked with the spec).

>>> from mtdsl.spec.load import load_text
>>> spec = load_text('''model demo
... backbone trunk = timm("test_resnet")
... dataset d = synthetic()
... task a: classify(d) { classes = 2 }
... task b: classify(d) { classes = 2; branch = trunk.stage3 }''')
>>> [node.id for node in task_paths(spec)["b"][-3:]]
['trunk.stage3', 'b/trunk.stage4', 'b.head']
"""

from __future__ import annotations

from mtdsl.errors import GraphError
from mtdsl.graph.backbones import backbone_info
from mtdsl.graph.node_keys import HeadNode, NeckNode, NodeKey, SegmentNode
from mtdsl.spec.branches import branch_order, root_backbones
from mtdsl.spec.document import Spec


def neck_inputs(spec: Spec, neck: str) -> list[SegmentNode]:
    """The shared segments whose maps feed ``neck``, finest first: those at strides ``2**min_level …``
    (``simple_pyramid``: the last one; :meth:`~mtdsl.spec.necks.NeckConfig.input_indices`)."""
    config = spec.model.necks[neck]
    stages = backbone_info(spec.model.backbones[config.backbone].model).stages
    indices = config.input_indices([stage.reduction for stage in stages])
    return [SegmentNode(config.backbone, stages[i].name) for i in indices]


def task_paths(spec: Spec) -> dict[str, list[NodeKey]]:
    """Nodes from the first segment to the head, per task, in declaration order."""
    order = branch_order(spec)
    roots = root_backbones(spec, order)
    paths: dict[str, list[NodeKey]] = {}
    for name in order:
        task = spec.model.tasks[name]
        if task.neck is not None:
            feeding = neck_inputs(spec, task.neck)
            segments = backbone_info(spec.model.backbones[task.backbone].model).names
            last = segments.index(feeding[-1].segment)
            shared: list[NodeKey] = [SegmentNode(task.backbone, s) for s in segments[: last + 1]]
            paths[name] = shared + [NeckNode(task.neck), HeadNode(name)]
            continue
        backbone = roots[name]
        segments = backbone_info(spec.model.backbones[backbone].model).names
        tap_segment = task.tap.segment if task.tap is not None else None
        tap = segments.index(tap_segment) if tap_segment else len(segments) - 1
        branch_segment = task.branch.segment if task.branch is not None else None
        branch = segments.index(branch_segment) if branch_segment else len(segments) - 1
        if task.branch and tap_segment and branch > tap:
            raise GraphError(
                f"task '{name}' branches at {branch_segment} but stops earlier, at tap = {task.tap}",
                spec.span("task", name, "branch"),
                source=spec.source,
                hint=f"remove 'branch' (the task shares everything up to {tap_segment}) "
                f"or branch at {tap_segment} or earlier",
            )
        key, reference = ("branch", task.branch) if task.branch else ("tap", task.tap)
        owner = reference.owner if reference is not None else ""
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
            prefix = [SegmentNode(backbone, s) for s in segments[: branch + 1]]
        path = prefix[: tap + 1] + [SegmentNode(backbone, s, owner=name) for s in segments[branch + 1 : tap + 1]]
        paths[name] = path + [HeadNode(name)]
    return {name: paths[name] for name in spec.model.tasks}
