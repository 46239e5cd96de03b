"""Tasks that branch off other tasks: the order to lay out their paths in, and the backbone each one runs on.

``branch = beans.stage3`` makes a task share task ``beans``'s path up to
``stage3``; such references must not form a cycle. These rules read names
only, so they are checked with the spec; the sharing graph
(:mod:`mtdsl.graph.paths`) lays the paths out in this order.

>>> from mtdsl.spec.load import load_text
>>> spec = load_text('''model demo
... backbone trunk = timm("test_resnet")
... dataset d = synthetic()
... task b: classify(d) { classes = 2; branch = a.stage3 }
... task a: classify(d) { classes = 2 }''')
>>> order = branch_order(spec)
>>> order, root_backbones(spec, order)
(['a', 'b'], {'a': 'trunk', 'b': 'trunk'})
"""

from __future__ import annotations

from mtdsl.errors import GraphError
from mtdsl.spec.document import Spec


def branch_order(spec: Spec) -> list[str]:
    """Tasks ordered so that a task comes after the task it branches off; cycles are errors.

    Most specs have no task that branches off another: their order is the declared one,
    found without importing networkx (``mtdsl check`` stays fast).
    """
    edges = [
        (reference.owner, name)
        for name, task in spec.model.tasks.items()
        for reference in (task.branch, task.tap)
        if reference is not None and reference.owner in spec.model.tasks and reference.owner != name
    ]
    if not edges:
        return list(spec.model.tasks)
    import networkx as nx

    dependencies = nx.DiGraph()
    dependencies.add_nodes_from(spec.model.tasks)
    dependencies.add_edges_from(edges)
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
    key = "branch" if first.branch is not None and first.branch.owner == tasks[1] else "tap"
    loop = " → ".join(tasks + [tasks[0]])
    raise GraphError(
        f"tasks branch off each other in a cycle: {loop}",
        spec.span("task", tasks[0], key) or spec.span("task", tasks[0]),
        source=spec.source,
        expected="each task branches off a backbone, or off a task that does not lead back to it",
        hint=f"let one of them branch off a backbone, e.g. branch = {next(iter(spec.model.backbones), 'trunk')}.stage3",
    )


def root_backbones(spec: Spec, order: list[str]) -> dict[str, str]:
    """The backbone each task's path starts on: its own, or that of the task it branches off (``order`` first)."""
    roots: dict[str, str] = {}
    for name in order:
        task = spec.model.tasks[name]
        reference = task.branch or task.tap
        owner = reference.owner if reference is not None else ""
        roots[name] = roots[owner] if owner in spec.model.tasks and owner != name else task.backbone
    return roots
