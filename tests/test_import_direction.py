"""Dependencies point one way: each layer imports only its own layer and the layers below it.

The layers, from the bottom (see "Layout" in the README):

=============  ==================================================================================
base           ``mtdsl`` (the version), ``errors``, ``files``, ``cache``, ``console``, ``codegen.literal``
               (writes Python values; imports nothing of mtdsl, and ``nn.module_call`` prints constructor calls with it)
frontend       grammar, parser, AST
spec           pydantic configs of every kind, lowering, the checks that read the spec alone, streams; the task
               kinds' registry and each kind's torch-free ``kinds.<kind>.kind``
graph          timm's backbone metadata and the checks that need it, task paths, the sharing graph
nn             torch modules: backbone segments, necks, heads, losses, the model (with ``detection``)
render         diagrams, summaries, plots, drawn predictions; how each image-label kind words a prediction,
               ``kinds.<kind>.render``
train          ``data``, ``metrics``, ``loop`` (sampling, weighting, phases, …), ``run`` (folder, fingerprints,
               checkpoints, reports); each task kind's training side, ``kinds.<kind>.train``
codegen        ``model.py`` and ``train.py``: the loop is generated from train's parts
orchestrators  ``compiler`` (and its ``model_cache``), ``check_command``, ``launch``, ``predict``, ``compare``, ``api``,
               ``cli``: may import anything; each task kind's ``kinds.<kind>.export`` and ``kinds.<kind>.predict``
=============  ==================================================================================

Every import counts for the direction, at the top of a module or inside a function: an import
that only runs later still points where it points. The one reference up is by name,
not an import: the package's ``__getattr__`` hands ``mtdsl.compile``/``train``/``load`` over to
``mtdsl.api`` on first use (``importlib.import_module``), so that ``import mtdsl`` stays cheap; type
checkers read those names from ``mtdsl/__init__.pyi``.

No two modules may import each other, directly or round a longer loop. For cycles only the
imports that run when a module is loaded count: those at module level, including the ones under
``if TYPE_CHECKING:`` (a type checker follows them as the interpreter follows the others) and in
class bodies. Imports inside a function body do not count: they run once both modules are loaded,
and the layer rule above still holds them to pointing down.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

import mtdsl

SOURCE = Path(mtdsl.__file__).resolve().parent

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("mtdsl", "mtdsl.errors", "mtdsl.files", "mtdsl.cache", "mtdsl.console", "mtdsl.codegen.literal")),
    ("frontend", ("mtdsl.frontend",)),
    ("spec", ("mtdsl.spec", "mtdsl.kinds")),
    ("graph", ("mtdsl.graph",)),
    ("nn", ("mtdsl.nn", "mtdsl.detection")),
    ("render", ("mtdsl.render", "mtdsl.kinds.*.render")),
    ("train", ("mtdsl.train", "mtdsl.kinds.*.train")),
    ("codegen", ("mtdsl.codegen",)),
    ("orchestrators", ("mtdsl.compiler", "mtdsl.model_cache", "mtdsl.check_command", "mtdsl.launch", "mtdsl.predict",
                       "mtdsl.compare", "mtdsl.export", "mtdsl.api", "mtdsl.cli", "mtdsl.__main__",
                       "mtdsl.kinds.*.export", "mtdsl.kinds.*.predict")),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(SOURCE.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the longest prefix that names ``module`` or a package above it.

    ``mtdsl`` itself names only the package's ``__init__``, so a new top-level module has no layer
    until one is given to it here. A ``*`` in a prefix stands for one name: a task kind's folder
    spans the layers, one module each (``mtdsl.kinds.*.train`` is the training side of every kind).
    """
    best, length = None, -1
    parts = module.split(".")
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            pattern = prefix.split(".")
            deep_enough = len(parts) == len(pattern) or (prefix != "mtdsl" and len(parts) > len(pattern))
            matches = deep_enough and all(want in ("*", part) for want, part in zip(pattern, parts))
            if matches and len(prefix) > length:
                best, length = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}")
    return best


def _import_nodes(tree: ast.Module, module_level: bool):
    """Every node of ``tree``; with ``module_level``, none inside a function body."""
    if not module_level:
        yield from ast.walk(tree)
        return
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack += [child for child in ast.iter_child_nodes(node)
                  if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]


def imported_modules(module: str, path: Path, *, module_level: bool = False) -> list[tuple[int, str]]:
    """``(line, module)`` of every ``mtdsl`` module that ``module`` imports, anywhere in its file.

    With ``module_level``, only the imports that run when the module is loaded (none inside a function).
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path)), module_level):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from mtdsl.codegen import literal` imports the module mtdsl.codegen.literal
            found += [(node.lineno, f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
                      for alias in node.names]
    return sorted({(line, name) for line, name in found if name == "mtdsl" or name.startswith("mtdsl.")})


def import_graph(modules: dict[str, Path]) -> nx.DiGraph:
    """Module → module it imports at load time, among ``modules``.

    Importing ``a.b`` also runs the package ``a``'s ``__init__``; that implicit step is not an
    edge, so a package may import its own modules.
    """
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for module, path in modules.items():
        graph.add_edges_from((module, imported) for _, imported in imported_modules(module, path, module_level=True)
                             if imported in modules and imported != module)
    return graph


def import_cycles(modules: dict[str, Path]) -> list[str]:
    """Each import cycle among ``modules`` as ``a → b → a``, shortest first."""
    cycles = [_from_smallest(cycle) for cycle in nx.simple_cycles(import_graph(modules))]
    return [" → ".join([*cycle, cycle[0]]) for cycle in sorted(cycles, key=lambda cycle: (len(cycle), cycle))]


def _from_smallest(cycle: list[str]) -> list[str]:
    """The cycle rotated to start at its smallest module name, so one cycle always reads the same."""
    start = cycle.index(min(cycle))
    return cycle[start:] + cycle[:start]


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_points_back_up():
    upward = []
    for module, path in MODULES.items():
        own = layer_of(module)
        for line, imported in imported_modules(module, path):
            if layer_of(imported) > own:
                upward.append(f"{module} ({LAYERS[own][0]}), line {line}: imports {imported} "
                              f"({LAYERS[layer_of(imported)][0]})")
    assert not upward, "imports that point back up:\n  " + "\n  ".join(upward)


def test_the_rule_catches_an_upward_import(tmp_path):
    """The walk sees imports inside functions too, and names the module and the line."""
    path = tmp_path / "checks.py"
    path.write_text("def f():\n    from mtdsl.nn.backbone import backbone_info\n", encoding="utf-8")
    imports = imported_modules("mtdsl.spec.checks", path)
    assert imports == [(2, "mtdsl.nn.backbone")]
    assert layer_of(imports[0][1]) > layer_of("mtdsl.spec.checks")


def test_no_module_imports_itself_round_a_cycle():
    cycles = import_cycles(MODULES)
    assert not cycles, "import cycles (break each by moving what both sides need into a module below them):\n  " \
        + "\n  ".join(cycles)


def test_the_cycle_rule_catches_a_cycle_at_module_level_only(tmp_path):
    """A loop closed under ``if TYPE_CHECKING:`` is a cycle; one closed inside a function is not."""
    files = {
        "mtdsl.a": "from mtdsl.b import B\n",
        "mtdsl.b": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from mtdsl.a import A\nB = 1\n",
        "mtdsl.c": "from mtdsl.a import A\n",
        "mtdsl.d": "def f():\n    from mtdsl.c import A\n",
    }
    modules = {}
    for name, text in files.items():
        modules[name] = tmp_path / f"{name.rpartition('.')[2]}.py"
        modules[name].write_text(text, encoding="utf-8")
    modules["mtdsl.c"].write_text("from mtdsl.a import A\nfrom mtdsl.d import f\n", encoding="utf-8")
    assert import_cycles(modules) == ["mtdsl.a → mtdsl.b → mtdsl.a"]


def _imports_torch(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SOURCE.parent), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("modules", [
    "mtdsl.spec.document, mtdsl.frontend.parser",
    "mtdsl.spec.load, mtdsl.spec.checks, mtdsl.graph.build, mtdsl.graph.checks",
])
def test_the_front_end_loads_without_torch(modules):
    result = _imports_torch(f"import {modules}; import sys; "
                            "assert 'torch' not in sys.modules and 'timm' not in sys.modules, 'torch or timm loaded'")
    assert result.returncode == 0, result.stderr
