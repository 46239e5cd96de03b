"""Sharing graph → readable ``model.py`` source.

The generated module depends only on torch, timm and ``mtdsl.nn``. It builds
the same modules under the same names as :class:`mtdsl.nn.model.MultiTaskModel`,
so either loads the other's ``state_dict``, and its ``forward`` spells out the
graph walk: each node is one line, guarded by the set of tasks that need it.

Example output for two tasks, ``b`` branching at ``stage3``::

    trunk_stage3 = self.backbone['trunk']['stage3'](trunk_stage2)
    if wanted & {'a'}:
        trunk_stage4 = self.backbone['trunk']['stage4'](trunk_stage3)
        outputs['a'] = self.heads['a'](trunk_stage4)

Names from the spec never become Python syntax of their own: modules are
reached by item (``self.heads['a']``), values are written by
:func:`~mtdsl.codegen.literal.literal`, and each node's local variable is
derived from its name but renamed if it would collide with a keyword, a
builtin, a name the module binds or another node's variable.
"""

from __future__ import annotations

import builtins
import keyword
import re

import networkx as nx

from mtdsl import __version__
from mtdsl.codegen.literal import checked_source, docstring_text, imported_names, literal
from mtdsl.nn.heads import head_source
from mtdsl.nn.necks import neck_source
from mtdsl.spec.heads import HEAD_CONFIGS
from mtdsl.spec.necks import NECK_CONFIGS

#: Names ``forward`` uses itself; node variables must not take them.
FORWARD_NAMES = frozenset({"self", "x", "tasks", "requested", "wanted", "outputs"})
_FIXED_IMPORTS = (
    "from __future__ import annotations",
    "import copy",
    "from collections.abc import Iterable",
    "from typing import Any",
    "import torch",
    "from torch import nn",
)
_MODULE_NAMES = frozenset({"TASKS", "INPUT_SIZE", "Model"})


def class_name(model_name: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", model_name)
    name = "".join(word[:1].upper() + word[1:] for word in words if word)
    if not name or name[0].isdigit():
        name = "Mtl" + name
    return name + "Model"


def variable(node: str) -> str:
    """A readable identifier for a node's value: ``trunk.stage3`` → ``trunk_stage3``."""
    name = re.sub(r"\W", "_", node.replace("/", "__"), flags=re.ASCII)
    return name if name.isidentifier() else "_" + name


def variables(nodes: list[str], taken: set[str]) -> dict[str, str]:
    """One distinct local variable per node, none of them in ``taken``, keywords or builtins.

    A name that would collide gets the first free numbered suffix (``x`` → ``x_2``), so
    ``a.b`` and a neck named ``a_b`` never share a variable.
    """
    used = set(taken) | set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins))
    names = {}
    for node in nodes:
        base = variable(node)
        name, number = base, 1
        while name in used:
            number += 1
            name = f"{base}_{number}"
        used.add(name)
        names[node] = name
    return names


def generate_model_source(graph: nx.DiGraph, spec_path: str = "") -> str:
    """Python source of a module equivalent to ``MultiTaskModel(graph)``.

    Raises:
        GeneratedCodeError: the source would not compile (mtdsl's bug, never the spec's).
    """
    tasks: dict[str, list[str]] = graph.graph["tasks"]
    name = class_name(graph.graph["name"])
    nodes = graph.nodes
    imports = {"from mtdsl.nn.model import resolve_tasks"}

    backbone_lines = []
    for backbone, config in graph.graph["backbones"].items():
        backbone_import, expression = _backbone_source(config)
        imports.add(backbone_import)
        backbone_lines.append(f"            {literal(backbone)}: {expression},")

    shared = _grouped(graph, "segment", "backbone")
    branches = _grouped(graph, "branch", "owner")
    neck_lines = []
    head_lines = []
    for node, data in sorted(nodes(data=True)):
        if data["kind"] == "neck":
            config = NECK_CONFIGS.get(data["config"]["kind"]).model_validate(data["config"])
            neck_import, expression = neck_source(config, data["in_channels"], data["in_strides"])
            imports.add(neck_import)
            neck_lines.append(f"            {literal(data['neck'])}: {expression},")
        elif data["kind"] == "head":
            config = HEAD_CONFIGS.get(data["head"]["kind"]).model_validate(data["head"])
            head_import, expression = head_source(
                config, data["in_channels"], data["num_outputs"], data.get("num_levels", 1)
            )
            imports.add(head_import)
            head_lines.append(f"            {literal(data['task'])}: {expression},")

    body = [
        "        built = {",
        *backbone_lines,
        "        }",
        "        self.backbone = nn.ModuleDict({",
        *_module_dict_lines(shared, lambda d: f"built[{literal(d['backbone'])}][{literal(d['segment'])}]"),
        "        })",
        "        self.branches = nn.ModuleDict({",
        *_module_dict_lines(
            branches, lambda d: f"copy.deepcopy(built[{literal(d['backbone'])}][{literal(d['segment'])}])"
        ),
        "        })",
        "        self.necks = nn.ModuleDict({",
        *neck_lines,
        "        })",
        "        self.heads = nn.ModuleDict({",
        *head_lines,
        "        })",
    ]

    taken = FORWARD_NAMES | _MODULE_NAMES | {name} | imported_names([*_FIXED_IMPORTS, *imports])
    forward = _forward_lines(graph, set(tasks), taken)

    task_summary = "\n".join(
        f"    {docstring_text(task)}: {docstring_text(nodes[path[-1]]['task_kind'])}, "
        f"outputs {nodes[path[-1]]['num_outputs']}, path {docstring_text(' → '.join(path[:-1]))}"
        for task, path in tasks.items()
    )
    origin = f" from {docstring_text(spec_path)}" if spec_path else ""
    source = f'''"""{name}: generated by mtdsl {docstring_text(__version__)}{origin}.

Do not edit: change the spec and run `mtdsl compile` again.

Tasks:
{task_summary}
"""

from __future__ import annotations

{"import copy" + chr(10) if branches else ""}from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

{chr(10).join(sorted(imports))}

TASKS = {literal(tuple(tasks))}
INPUT_SIZE = {literal(tuple(graph.graph["input"]))}


class {name}(nn.Module):
    """Outputs a dict keyed by task name; only the requested tasks' paths run.

    Args:
        load_pretrained: ``False`` builds every backbone with random weights, whatever the spec's ``pretrained``.
    """

    def __init__(self, load_pretrained: bool = True) -> None:
        super().__init__()
{chr(10).join(body)}

    def forward(self, x: torch.Tensor, tasks: str | Iterable[str] | None = None) -> dict[str, Any]:
        requested = resolve_tasks(tasks, TASKS)
        wanted = set(requested)
        outputs: dict[str, Any] = {{}}
{chr(10).join(forward)}
        return {{task: outputs[task] for task in requested}}


Model = {name}
'''
    return checked_source(source, "model.py")


def _backbone_source(config: dict) -> tuple[str, str]:
    """The import and the expression that build one backbone's segments, with its pretrained weights."""
    arguments = [literal(config["model"])]
    pretrained = config.get("pretrained", "none")
    if pretrained != "none":
        arguments.append(f"{literal(pretrained)} if load_pretrained else 'none'")
    if config["drop_rate"]:
        arguments.append(f"drop_rate={literal(config['drop_rate'])}")
    if config["drop_path_rate"]:
        arguments.append(f"drop_path_rate={literal(config['drop_path_rate'])}")
    if pretrained == "none":
        return "from mtdsl.nn.backbone import timm_segments", f"timm_segments({', '.join(arguments)})"
    return "from mtdsl.nn.pretrained import pretrained_segments", f"pretrained_segments({', '.join(arguments)})"


def module_access(data: dict) -> str:
    """The expression that reaches a node's module, by item so that no name becomes an attribute."""
    if data["kind"] == "segment":
        return f"self.backbone[{literal(data['backbone'])}][{literal(data['segment'])}]"
    if data["kind"] == "branch":
        return f"self.branches[{literal(data['owner'])}][{literal(data['segment'])}]"
    if data["kind"] == "neck":
        return f"self.necks[{literal(data['neck'])}]"
    if data["kind"] == "head":
        return f"self.heads[{literal(data['task'])}]"
    raise ValueError(f"node kind {data['kind']!r} has no module")


def _forward_lines(graph: nx.DiGraph, all_tasks: set[str], taken: set[str]) -> list[str]:
    """One line per node in topological order; consecutive lines needing the same tasks share one ``if``."""
    order = [n for n in nx.lexicographical_topological_sort(graph) if graph.nodes[n]["kind"] != "input"]
    names = variables([n for n in order if graph.nodes[n]["kind"] != "head"], taken)
    names["input"] = "x"
    lines: list[str] = []
    open_guard: tuple[str, ...] | None = None
    for node in order:
        data = graph.nodes[node]
        parents = data.get("inputs") or list(graph.predecessors(node))
        arguments = [names[parent] for parent in parents]
        if data["kind"] == "neck":
            argument = f"[{', '.join(arguments)}]"
        elif graph.nodes[parents[0]]["kind"] == "neck":
            argument = f"{arguments[0]}, x.shape[-2:]"
        else:
            argument = arguments[0]
        call = f"{module_access(data)}({argument})"
        line = f"outputs[{literal(data['task'])}] = {call}" if data["kind"] == "head" else f"{names[node]} = {call}"
        guard = () if set(data["tasks"]) == all_tasks else tuple(data["tasks"])
        if guard and guard != open_guard:
            lines.append(f"        if wanted & {{{', '.join(literal(t) for t in guard)}}}:")
        lines.append(("            " if guard else "        ") + line)
        open_guard = guard or None
    return lines


def _grouped(graph: nx.DiGraph, kind: str, key: str) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for node in nx.lexicographical_topological_sort(graph):
        data = graph.nodes[node]
        if data["kind"] == kind:
            groups.setdefault(data[key], []).append(data)
    return groups


def _module_dict_lines(groups: dict[str, list[dict]], expression) -> list[str]:
    lines = []
    for group, members in groups.items():
        lines.append(f"            {literal(group)}: nn.ModuleDict({{")
        lines += [f"                {literal(m['segment'])}: {expression(m)}," for m in members]
        lines.append("            }),")
    return lines
