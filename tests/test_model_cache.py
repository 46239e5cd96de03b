"""What compiling keeps per model (sizes, FLOPs, model.py): the computed answers, never another model's."""

from __future__ import annotations

import json

from mtdsl.codegen.model_source import generate_model_source
from mtdsl.compiler import compile_text
from mtdsl.nn.cost import count_flops
from mtdsl.nn.parameters import count_parameters

SPEC = """model kept
input 3x32x32
backbone trunk = timm("test_resnet")
dataset shapes = synthetic(count = 8, size = 32)
task shape: classify(shapes) {{ classes = {classes}; head = mlp({width}) }}
train {{ optimizer = adamw(lr = {lr}) }}
"""


def _compiled(monkeypatch, tmp_path, classes=3, width=16, lr=0.001):
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path))
    return compile_text(SPEC.format(classes=classes, width=width, lr=lr), "kept.mtl")


def test_kept_answers_are_the_computed_ones(monkeypatch, tmp_path):
    first = _compiled(monkeypatch, tmp_path)
    answers = (first.model_facts.params(), first.model_facts.flops(), first.model_facts.model_source())
    again = _compiled(monkeypatch, tmp_path)
    assert again.model_facts.path == first.model_facts.path and again.model_facts.entry  # read back, not computed
    assert (again.model_facts.params(), again.model_facts.flops(), again.model_facts.model_source()) == answers
    fresh = count_parameters(again.graph.copy())
    assert answers[0] == {node: data["params"] for node, data in fresh.nodes(data=True) if data["kind"] == "head"}
    assert answers[1] == count_flops(again.graph)
    assert answers[2] == generate_model_source(again.graph, "kept.mtl")


def test_another_model_is_another_entry_and_training_settings_are_not(monkeypatch, tmp_path):
    base = _compiled(monkeypatch, tmp_path).model_facts
    assert _compiled(monkeypatch, tmp_path, lr=0.01).model_facts.path == base.path
    for other in (_compiled(monkeypatch, tmp_path, classes=5), _compiled(monkeypatch, tmp_path, width=32)):
        assert other.model_facts.path != base.path
        assert other.model_facts.params() != base.params()


def test_a_corrupt_or_misshapen_entry_is_computed_again(monkeypatch, tmp_path):
    facts = _compiled(monkeypatch, tmp_path).model_facts
    expected = facts.params()
    for planted in ("{not json", json.dumps({"params": {"shape.head": "many"}, "model_source": 3})):
        facts.path.write_text(planted, encoding="utf-8")
        again = _compiled(monkeypatch, tmp_path)
        assert again.model_facts.params() == expected
        assert again.graph.nodes["shape.head"]["params"] == expected["shape.head"]
        assert isinstance(again.model_facts.model_source(), str)
