from __future__ import annotations

import ast
import importlib.util
import sys

import pytest
import torch

from mtdsl.codegen.model_source import generate_model_source
from mtdsl.compiler import compile_spec
from mtdsl.spec.load import load_spec

from conftest import SPECS, tiny_backbones

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
    assert set(generated.state_dict()) == set(compiled.state_dict())
    generated.load_state_dict(compiled.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected, actual = compiled(x), generated(x)
    assert list(actual) == list(compilation.spec.model.tasks)
    for task in expected:
        torch.testing.assert_close(actual[task], expected[task], rtol=0, atol=0)


def test_generated_source_is_deterministic(two_branch):
    assert generate_model_source(two_branch.graph) == generate_model_source(two_branch.graph)
