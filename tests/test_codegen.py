from __future__ import annotations

import ast
import importlib.util
import sys

import pytest
import torch
from conftest import SPECS, tiny_backbones

from mtdsl.codegen.model_source import generate_model_source
from mtdsl.compiler import compile_spec
from mtdsl.spec.load import load_spec

ALLOWED_IMPORTS = ("typing", "torch", "timm", "mtdsl.nn", "__future__", "collections", "copy")


def _import(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _imported_modules(source: str) -> set[str]:
    tree = ast.parse(source)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
    return names


def test_generated_source_equals_the_in_memory_model(two_branch, tmp_path):
    path = tmp_path / "model.py"
    path.write_text(generate_model_source(two_branch.graph, "demo.mtl"))
    generated = _import(path, "generated_two_branch").Model().eval()
    compiled = two_branch.model().eval()
    generated.load_state_dict(compiled.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for tasks in (None, ["c"], ["e", "a"]):
            expected, actual = compiled(x, tasks=tasks), generated(x, tasks=tasks)
            assert list(expected) == list(actual)
            for task in expected:
                torch.testing.assert_close(actual[task], expected[task], rtol=0, atol=0)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_generated_model_for_every_spec_matches_and_loads_the_same_state_dict(path, tmp_path):
    compilation = compile_spec(tiny_backbones(load_spec(path)))
    source = generate_model_source(compilation.graph, str(path))
    assert all(name.startswith(ALLOWED_IMPORTS) for name in _imported_modules(source)), _imported_modules(source)
    (tmp_path / "model.py").write_text(source)
    generated = _import(tmp_path / "model.py", f"generated_{path.stem}").Model().eval()
    compiled = compilation.model().eval()
    assert list(generated.state_dict()) == list(compiled.state_dict())  # one plan: same keys, same order
    generated.load_state_dict(compiled.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected, actual = compiled(x), generated(x)
    assert list(actual) == list(compilation.spec.model.tasks)
    for task in expected:
        torch.testing.assert_close(actual[task], expected[task], rtol=0, atol=0)


def test_generated_source_is_deterministic(two_branch):
    assert generate_model_source(two_branch.graph) == generate_model_source(two_branch.graph)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_generated_model_imports_only_what_it_uses_and_names_every_argument(path):
    """model.py prints the module plan: every imported name is used, and no constructor gets a bare positional value."""
    source = generate_model_source(compile_spec(tiny_backbones(load_spec(path))).graph, str(path))
    tree = ast.parse(source)
    imported = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module != "__future__"
        for alias in node.names
    } | {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert imported <= used, f"imported but unused: {sorted(imported - used)}"
    module_classes = {
        alias.name for node in tree.body
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("mtdsl.nn.heads", "mtdsl.nn.necks"))
        for alias in node.names
    }
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) in module_classes]
    assert calls and all(not call.args for call in calls), [ast.unparse(c) for c in calls if c.args]
