"""Sharing graph → :class:`MultiTaskModel`, by way of the module plan (:mod:`mtdsl.nn.plan`).

The model is generic: it builds the plan's modules in their places and its
``forward`` runs the plan's steps, only those that a requested task needs, each
once. Outputs are a dict keyed by task name; heads are never matched to tasks
by position. The generated ``model.py`` prints the same plan, so either loads
the other's ``state_dict``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import networkx as nx
import torch
from torch import nn

from mtdsl.nn.module_call import ModuleCall
from mtdsl.nn.plan import CONTAINERS, INPUT, PlannedModule, module_plan


def resolve_tasks(tasks: str | Iterable[str] | None, known: Sequence[str]) -> list[str]:
    """The requested task names, checked; ``None`` means all tasks."""
    if tasks is None:
        return list(known)
    requested = [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in requested if t not in known]
    if unknown:
        raise KeyError(f"unknown task {unknown[0]!r}; this model's tasks are: {', '.join(known)}")
    return requested


class MultiTaskModel(nn.Module):
    """A multi-task network built from a sharing graph.

    Args:
        graph: the graph from :func:`mtdsl.graph.build.build_graph` (or read from ``graph.json``).
        backbone_modules: optional pre-built segments per backbone; the others are built
            with the weights their spec names (``pretrained = none | imagenet | "PATH"``).
        load_pretrained: ``False`` builds every backbone with random weights whatever the
            spec says (e.g. before loading a whole checkpoint, or with no weights at hand).

    Raises:
        WeightsError: a backbone's pretrained weights cannot be found or do not fit.
    """

    def __init__(
        self,
        graph: nx.DiGraph,
        backbone_modules: dict[str, nn.ModuleDict] | None = None,
        load_pretrained: bool = True,
    ) -> None:
        super().__init__()
        plan = module_plan(graph)
        self.task_names: list[str] = list(plan.tasks)
        built = dict(backbone_modules or {})
        for backbone in plan.backbones:
            if backbone.name not in built:
                built[backbone.name] = backbone.build(load_pretrained)
        for container in CONTAINERS:
            setattr(self, container, nn.ModuleDict())
        for planned in plan.modules:
            self._put(planned.place, _made(planned, built))
        self._steps = plan.steps

    def _put(self, place: tuple[str, ...], module: nn.Module) -> None:
        parent = getattr(self, place[0])
        for key in place[1:-1]:
            if key not in parent:
                parent[key] = nn.ModuleDict()
            parent = parent[key]
        parent[place[-1]] = module

    def forward(self, x: torch.Tensor, tasks: str | Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Run the requested tasks (all by default) on one batch.

        Shapes:
            ``x``: ``(N, C, H, W)``. Outputs: ``(N, num_outputs)`` for classification heads;
            ``(class_logits (N, A, classes), box_deltas (N, A, 4))`` for detection heads;
            ``(N, classes, H, W)`` logits for segmentation heads.
        """
        requested = resolve_tasks(tasks, self.task_names)
        wanted = set(requested)
        values: dict[str, Any] = {INPUT: x}
        outputs: dict[str, Any] = {}
        for step in self._steps:
            if wanted.isdisjoint(step.tasks):
                continue
            module = self.get_submodule(".".join(step.place))
            inputs = [values[name] for name in step.inputs]
            if step.reads == "maps":
                values[step.node] = module(inputs)
            elif step.reads == "pyramid":
                values[step.node] = module(inputs[0], x.shape[-2:])
            elif step.reads == "tokens":
                values[step.node] = module.as_map(inputs[0], x.shape[-2:])  # type: ignore[operator]  # TokenSegment, WholeTap
            else:
                values[step.node] = module(inputs[0])
            if step.task is not None:
                outputs[step.task] = values[step.node]
        return {task: outputs[task] for task in requested}


def _made(planned: PlannedModule, built: dict[str, nn.ModuleDict]) -> nn.Module:
    made = planned.made
    if isinstance(made, ModuleCall):
        return made.build()
    segment = built[made.backbone][made.segment]
    return copy.deepcopy(segment) if made.copy else segment
