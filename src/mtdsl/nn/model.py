"""Sharing graph → :class:`MultiTaskModel`.

The model is generic: modules are created from the graph's node data, and
``forward`` walks the nodes in topological order, computing only those on the
paths of the requested tasks, each once. Outputs are a dict keyed by task name;
heads are never matched to tasks by position.

Module layout (and so ``state_dict`` keys), shared with generated ``model.py``:

* ``backbone.<backbone>.<segment>``: shared segments,
* ``branches.<task>.<segment>``: a task's private copies (``copy.deepcopy``),
* ``necks.<neck>``: feature pyramids, each reading several backbone maps,
* ``heads.<task>``: heads; one that reads a pyramid is called ``head(maps, image_size)``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import networkx as nx
import torch
from torch import nn

from mtdsl.nn.heads import build_head
from mtdsl.nn.necks import build_neck
from mtdsl.nn.pretrained import pretrained_segments
from mtdsl.spec.heads import HEAD_CONFIGS
from mtdsl.spec.necks import NECK_CONFIGS


def resolve_tasks(tasks: str | Iterable[str] | None, known: Sequence[str]) -> list[str]:
    """The requested task names, checked; ``None`` means all tasks."""
    if tasks is None:
        return list(known)
    requested = [tasks] if isinstance(tasks, str) else list(tasks)
    unknown = [t for t in requested if t not in known]
    if unknown:
        raise KeyError(f"unknown task {unknown[0]!r}; this model's tasks are: {', '.join(known)}")
    return requested


def _child(parent: nn.ModuleDict, key: str) -> nn.ModuleDict:
    if key not in parent:
        parent[key] = nn.ModuleDict()
    return parent[key]


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
        self.task_names: list[str] = list(graph.graph["tasks"])
        backbones = dict(backbone_modules or {})
        for name, config in graph.graph["backbones"].items():
            if name not in backbones:
                backbones[name] = pretrained_segments(
                    config["model"],
                    config.get("pretrained", "none") if load_pretrained else "none",
                    drop_rate=config["drop_rate"],
                    drop_path_rate=config["drop_path_rate"],
                )
        self.backbone = nn.ModuleDict()
        self.branches = nn.ModuleDict()
        self.necks = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        for node, data in graph.nodes(data=True):
            if data["kind"] == "segment":
                _child(self.backbone, data["backbone"])[data["segment"]] = backbones[data["backbone"]][data["segment"]]
        for node, data in graph.nodes(data=True):
            if data["kind"] == "branch":
                original = backbones[data["backbone"]][data["segment"]]
                _child(self.branches, data["owner"])[data["segment"]] = copy.deepcopy(original)
            elif data["kind"] == "neck":
                config = NECK_CONFIGS.get(data["config"]["kind"]).model_validate(data["config"])
                self.necks[data["neck"]] = build_neck(config, data["in_channels"], data["in_strides"])
            elif data["kind"] == "head":
                config = HEAD_CONFIGS.get(data["head"]["kind"]).model_validate(data["head"])
                self.heads[data["task"]] = build_head(
                    config, data["in_channels"], data["num_outputs"], data.get("num_levels", 1)
                )

        self._order = [n for n in nx.lexicographical_topological_sort(graph) if graph.nodes[n]["kind"] != "input"]
        self._parents = {n: graph.nodes[n].get("inputs") or list(graph.predecessors(n)) for n in self._order}
        self._reads_pyramid = {n for n in self._order if any(graph.nodes[p]["kind"] == "neck" for p in self._parents[n])}
        self._module_path = {n: graph.nodes[n]["module"] for n in self._order}
        self._paths = {task: set(path) for task, path in graph.graph["tasks"].items()}

    def node_module(self, node: str) -> nn.Module:
        return self.get_submodule(self._module_path[node])

    def forward(self, x: torch.Tensor, tasks: str | Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Run the requested tasks (all by default) on one batch.

        Shapes:
            ``x``: ``(N, C, H, W)``. Outputs: ``(N, num_outputs)`` for classification heads;
            ``(class_logits (N, A, classes), box_deltas (N, A, 4))`` for detection heads;
            ``(N, classes, H, W)`` logits for segmentation heads.
        """
        requested = resolve_tasks(tasks, self.task_names)
        needed = set().union(*(self._paths[t] for t in requested))
        values: dict[str, Any] = {"input": x}
        for node in self._order:
            if node not in needed:
                continue
            module = self.node_module(node)
            parents = self._parents[node]
            if len(parents) > 1:
                values[node] = module([values[p] for p in parents])
            elif node in self._reads_pyramid:
                values[node] = module(values[parents[0]], x.shape[-2:])
            else:
                values[node] = module(values[parents[0]])
        return {task: values[f"{task}.head"] for task in requested}
