from __future__ import annotations

import dataclasses

import pytest
from conftest import SPECS

from mtdsl.errors import SpecSyntaxError
from mtdsl.frontend import ast
from mtdsl.frontend.parser import parse


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_spec_parses(path):
    tree = parse(path.read_text(), str(path))
    assert any(isinstance(s, ast.ModelStatement) for s in tree.statements)


def test_values_lower_to_typed_nodes():
    tree = parse(
        'task t: classify(d, classes = 3) { head = mlp([512, 256], pool = avg+max); branch = trunk.stage3;'
        ' input = 3x128x128; weight = -0.5; x = ${v}; s = \'q\' }\n'
        'dataset d = folder("p", split = 0.65/0.10/0.25)'
    )
    task, dataset = tree.statements
    entries = {e.key: e.value for e in task.body.entries}
    assert isinstance(entries["head"], ast.Call) and entries["head"].name == "mlp"
    assert entries["head"].args[0].items[1].value == 256
    assert isinstance(entries["head"].kwargs[0].value, ast.Sum)
    assert entries["branch"].parts == ("trunk", "stage3")
    assert entries["input"].dims == (3, 128, 128)
    assert entries["weight"].value == -0.5
    assert entries["x"] == ast.Variable("v", entries["x"].span)
    assert entries["s"].value == "q"
    assert dataset.source.kwargs[0].value.parts == (0.65, 0.10, 0.25)
    assert task.kind.kwargs[0].name == "classes"


def test_spans_point_at_source_text():
    text = "model m\n\ntask beans: classify(ibean) {\n  branch = trunk.stage3\n}\n"
    task = parse(text).statements[1]
    branch = task.body.entries[0]
    line = text.splitlines()[branch.value.span.line - 1]
    assert line[branch.value.span.column - 1 : branch.value.span.end_column - 1] == "trunk.stage3"
    assert (task.name_span.line, task.name_span.column) == (3, 6)


def test_comments_and_separators_are_ignored():
    a = parse("model m # name\ntrain { epochs = 3; batch_size = 2, seed = 1 }")
    b = parse("model m\ntrain {\n  epochs = 3\n  batch_size = 2\n  seed = 1\n}")
    keys = lambda tree: [e.key for e in tree.statements[1].body.entries]  # noqa: E731
    assert keys(a) == keys(b) == ["epochs", "batch_size", "seed"]


def test_ast_nodes_are_frozen():
    tree = parse("model m")
    with pytest.raises(dataclasses.FrozenInstanceError):
        tree.statements[0].name = "other"


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("task a: classify(d) { weight 1 }", "missing '='", (1, 30)),
        ("modle x", "expected a statement", (1, 1)),
        ("input 224", "needs a shape", (1, 7)),
        ("task a: classify(d) { weight = 1", "unclosed block", (1, 32)),
        ("task a classify(d)", "missing ':'", (1, 8)),
        ("task a: classify(d) { x = f(a = 1, 2) }", "positional argument after keyword", (1, 36)),
    ],
)
def test_syntax_errors_are_labelled_and_located(text, message, position):
    with pytest.raises(SpecSyntaxError) as caught:
        parse(text, "bad.mtl")
    error = caught.value
    assert message in error.message
    assert (error.span.line, error.span.column) == position
    rendered = error.render()
    assert f"bad.mtl:{position[0]}:{position[1]}" in rendered
    assert rendered.splitlines()[2].strip().startswith("^")


def test_keywords_are_names_wherever_a_name_is_expected():
    tree = parse("model train\ntask input: classify(d, input = 3x32x32) { classes = [train, bus]; backbone = trunk }")
    task = tree.statements[1]
    assert tree.statements[0].name == "train" and task.name == "input"
    assert [item.id for item in task.body.entries[0].value.items] == ["train", "bus"]
    with pytest.raises(SpecSyntaxError, match="expected a statement"):
        parse("modelx m")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("5", 5), ("resnet50", "resnet50"), ("../shared/data", "../shared/data"), ("a#b", "a#b"), ("x y", "x y")],
)
def test_set_values_are_read_whole(raw, expected):
    from mtdsl.spec.load import override_value
    from mtdsl.spec.values import plain_value

    assert plain_value(override_value("v", raw), None) == expected
