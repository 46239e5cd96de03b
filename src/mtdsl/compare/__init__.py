"""``mtdsl compare``: one multi-task model against its single-task counterparts (thesis §6, Tables 6.1–6.6).

:func:`compare` derives each task's single-task spec
(:mod:`mtdsl.compare.single_task`), builds every model with random weights (the
weights change neither size nor speed), and measures side by side:
parameters, FLOPs and MACs (``torch.utils.flop_counter``, which counts 2 FLOPs
per multiply-add), median latency at each batch size and peak memory
(:mod:`mtdsl.compare.measure`). :mod:`mtdsl.compare.report` writes the table,
``compare.json``, ``compare.md`` and ``compare.png``.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import torch

from mtdsl.compare.measure import latencies, peak_memory
from mtdsl.compare.single_task import single_task_specs
from mtdsl.graph.build import build_graph
from mtdsl.nn.cost import count_flops
from mtdsl.nn.model import MultiTaskModel
from mtdsl.nn.parameters import count_parameters
from mtdsl.spec.document import Spec

MULTI = "multi-task"


def compare(spec: Spec, *, device: torch.device, batch_sizes: Sequence[int] = (1, 32), runs: int = 20,
            graph: nx.DiGraph | None = None) -> dict:
    """Size, cost, latency and memory of ``spec``'s model and of each task's single-task model.

    Returns:
        ``{"model", "input", "device", "batch_sizes", "runs", "tasks": [...], "rows": {name: row}}`` where
        ``rows`` has ``multi-task`` and one row per task's single-task model, each with ``params``,
        ``flops``, ``macs``, ``latency_ms`` (``{batch: median ms}``) and ``peak_memory_bytes`` (-1: not
        measured), and ``"single-task total"`` sums the single-task rows. ``graph`` is ``spec``'s sharing
        graph when the caller has built it already.
    """
    graphs = {MULTI: graph if graph is not None else count_parameters(build_graph(spec))}
    graphs.update({task: count_parameters(build_graph(single))
                   for task, single in single_task_specs(spec, graphs[MULTI]).items()})
    image_size = tuple(spec.model.input.size)
    models = {name: MultiTaskModel(graph, load_pretrained=False).to(device).eval() for name, graph in graphs.items()}
    timed = latencies(models, image_size, batch_sizes, device, runs=runs)
    del models
    memory = peak_memory({name: _factory(graph) for name, graph in graphs.items()}, image_size, max(batch_sizes),
                         device)
    rows = {}
    for name, graph in graphs.items():
        flops = count_flops(graph)["all"]
        rows[name] = {
            "params": sum(data["params"] for _, data in graph.nodes(data=True)),
            "flops": flops,
            "macs": flops // 2,
            "latency_ms": timed[name],
            "peak_memory_bytes": memory[name],
        }
    rows["single-task total"] = _total([rows[task] for task in spec.model.tasks], batch_sizes)
    return {
        "model": spec.name,
        "input": list(image_size),
        "device": str(device),
        "batch_sizes": list(batch_sizes),
        "runs": runs,
        "tasks": list(spec.model.tasks),
        "rows": rows,
    }


def _factory(graph):
    return lambda: MultiTaskModel(graph, load_pretrained=False)


def _total(rows: list[dict], batch_sizes: Sequence[int]) -> dict:
    """N single-task models run one after another: every count and time adds up."""
    memories = [row["peak_memory_bytes"] for row in rows]
    return {
        "params": sum(row["params"] for row in rows),
        "flops": sum(row["flops"] for row in rows),
        "macs": sum(row["macs"] for row in rows),
        "latency_ms": {batch: sum(row["latency_ms"][batch] for row in rows) for batch in batch_sizes},
        # N models deployed side by side, each in its own process, as N single-task models would be.
        "peak_memory_bytes": -1 if -1 in memories else sum(memories),
    }
