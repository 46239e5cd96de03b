"""What a model costs to run: FLOPs of one image through each task, counted on the meta device.

``torch.utils.flop_counter`` counts every operation of one forward pass on
the meta device: no memory and no compute, only the shapes.
"""

from __future__ import annotations

import networkx as nx
import torch
from torch.utils.flop_counter import FlopCounterMode

from mtdsl.graph.facts import every_fact
from mtdsl.nn.model import MultiTaskModel


def count_flops(graph: nx.DiGraph) -> dict[str, int]:
    """FLOPs of one image through each task alone (``"<task>"``) and through all tasks (``"all"``).

    One forward pass of all the tasks, its FLOPs counted per module: a task alone runs the
    nodes of its path, each as it runs among all the tasks, so its FLOPs are the sum of its
    path's nodes. (A forward pass per task made ``mtdsl compile`` grow with the tasks times
    the backbone: 187 s for 2,000 tasks; ``benchmarks/many_tasks.py``.)
    """
    with torch.device("meta"):
        model = MultiTaskModel(graph).eval()
        image = torch.empty(1, *graph.graph["input"])
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(image)
    by_module = counter.get_flop_counts()
    root = type(model).__name__
    by_node = {node: sum(by_module.get(f"{root}.{record.module}", {}).values())
               for node, record in every_fact(graph).items() if record.module}
    flops = {task: int(sum(by_node.get(node, 0) for node in path)) for task, path in graph.graph["tasks"].items()}
    flops["all"] = int(counter.get_total_flops())
    return flops
