"""Parameters and cost of the multi-task model against N single-task models.

A task's single-task equivalent is its own path through a whole backbone plus
its head, so it has as many parameters as its path here. FLOPs are counted by
:func:`mtdsl.nn.cost.count_flops` on the meta device (no memory, no compute),
or handed in by the compiler, which keeps them per model (:mod:`mtdsl.model_cache`).
"""

from __future__ import annotations

import networkx as nx
from rich.table import Table

from mtdsl.graph.facts import HeadFacts, NodeFacts, every_fact
from mtdsl.render.dot import human


def summarize(graph: nx.DiGraph, with_flops: bool = True, flops: dict[str, int] | None = None) -> dict:
    """The summary of ``graph``: parameters, and FLOPs (``flops``, else counted) unless ``with_flops`` is false."""
    tasks: dict[str, list[str]] = graph.graph["tasks"]
    every = every_fact(graph)
    multi_task = sum(record.params for record in every.values())
    shared = sum(record.params for record in every.values() if record.shared)
    per_task = {task: _task_summary([every[node] for node in path]) for task, path in tasks.items()}
    single_task = sum(entry["path_params"] for entry in per_task.values())
    summary = {
        "model": graph.graph["name"],
        "input": graph.graph["input"],
        "tasks": per_task,
        "shared_params": shared,
        "multi_task_params": multi_task,
        "single_task_params": single_task,
        "param_ratio": round(single_task / multi_task, 4) if multi_task else None,
    }
    summary["phases"] = phase_summary(graph, multi_task)
    if with_flops:
        if flops is None:
            from mtdsl.nn.cost import count_flops

            flops = count_flops(graph)
        for task in tasks:
            per_task[task]["flops"] = flops[task]
        single_flops = sum(flops[task] for task in tasks)
        summary.update(
            multi_task_flops=flops["all"],
            single_task_flops=single_flops,
            flop_ratio=round(single_flops / flops["all"], 4) if flops["all"] else None,
        )
    return summary


def _task_summary(path: list[NodeFacts]) -> dict:
    """One task's entry: the parameters on its path, those only it uses, and its head's outputs."""
    head = path[-1]
    assert isinstance(head, HeadFacts)  # every task's path ends at its head
    return {
        "path_params": sum(record.params for record in path),
        "private_params": sum(record.params for record in path if not record.shared),
        "outputs": head.num_outputs,
        "kind": head.task_kind,
    }


def phase_summary(graph: nx.DiGraph, total_params: int) -> list[dict]:
    """Per training phase: the nodes it freezes and how many parameters stay trainable."""
    phases = []
    every = every_fact(graph)
    for phase in graph.graph.get("phases", []):
        frozen = [node for node, record in every.items() if phase in record.frozen_in]
        frozen_params = sum(every[node].params for node in frozen)
        phases.append({"name": phase, "frozen": frozen, "frozen_params": frozen_params,
                       "trainable_params": total_params - frozen_params})
    return phases


def phase_table(summary: dict) -> Table | None:
    """What each phase freezes, or ``None`` when the spec declares no phases."""
    if not summary.get("phases"):
        return None
    table = Table(title=f"{summary['model']}: training phases")
    table.add_column("phase", no_wrap=True)
    table.add_column("trainable", justify="right")
    table.add_column("frozen", justify="right")
    table.add_column("frozen parts")
    for phase in summary["phases"]:
        table.add_row(phase["name"], human(phase["trainable_params"]), human(phase["frozen_params"]),
                      ", ".join(phase["frozen"]) or "nothing")
    return table


def summary_table(summary: dict) -> Table:
    """The summary as a table that fits an 80-column terminal."""
    has_flops = "multi_task_flops" in summary
    count = len(summary["tasks"])
    table = Table(title=f"{summary['model']}: one multi-task model vs {count} single-task models")
    table.add_column("task", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("outputs", justify="right")
    table.add_column("params", justify="right")
    table.add_column("private", justify="right")
    if has_flops:
        table.add_column("FLOPs", justify="right")
    for task, entry in summary["tasks"].items():
        row = [task, entry["kind"], str(entry["outputs"]), human(entry["path_params"]), human(entry["private_params"])]
        if has_flops:
            row.append(human(entry["flops"]))
        table.add_row(*row)
    table.add_section()
    rows = [
        ["shared", "", "", human(summary["shared_params"]), "", ""],
        ["multi-task", "", "", human(summary["multi_task_params"]), "", human(summary.get("multi_task_flops", 0))],
        [f"single ×{count}", "", "", human(summary["single_task_params"]), "",
         human(summary.get("single_task_flops", 0))],
        ["single / multi", "", "", f"{summary['param_ratio']:.2f}×", "", f"{summary.get('flop_ratio') or 0:.2f}×"],
    ]
    for row in rows:
        table.add_row(*(row if has_flops else row[:-1]))
    return table
