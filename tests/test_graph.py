from __future__ import annotations

import os

import pytest
from conftest import ROOT, TWO_BRANCH_SPEC

from mtdsl.codegen.model_source import generate_model_source
from mtdsl.compiler import compile_file, compile_text
from mtdsl.graph.freeze import nodes_for
from mtdsl.graph.serialize import graph_from_json, graph_to_json
from mtdsl.render.dot import to_dot
from mtdsl.spec.references import SegmentRef

GOLDEN = ROOT / "tests" / "golden"
REGENERATE = os.environ.get("MTDSL_REGENERATE_GOLDEN") == "1"


def test_task_paths_follow_branch_and_tap(two_branch):
    paths = two_branch.graph.graph["tasks"]
    shared = ["trunk.stem", "trunk.stage1", "trunk.stage2"]
    assert paths["a"] == shared + ["trunk.stage3", "trunk.stage4", "a.head"]
    assert paths["b"] == shared + ["b/trunk.stage3", "b/trunk.stage4", "b.head"]
    assert paths["c"] == shared + ["b/trunk.stage3", "c/trunk.stage4", "c.head"]
    assert paths["e"] == shared + ["trunk.stage3", "e.head"]


def test_nodes_record_tasks_sharing_channels_and_stride(two_branch):
    nodes = two_branch.graph.nodes
    assert nodes["trunk.stage2"]["tasks"] == ["a", "b", "c", "e"] and nodes["trunk.stage2"]["shared"]
    assert nodes["b/trunk.stage3"]["tasks"] == ["b", "c"] and nodes["b/trunk.stage3"]["kind"] == "branch"
    assert nodes["c/trunk.stage4"]["tasks"] == ["c"] and not nodes["c/trunk.stage4"]["shared"]
    assert (nodes["trunk.stage3"]["channels"], nodes["trunk.stage3"]["stride"]) == (192, 16)
    assert nodes["e.head"]["in_channels"] == 192
    assert two_branch.graph.edges["trunk.stage3", "e.head"]["shape"] == [192, 4, 4]


def test_a_private_copy_has_the_parameters_of_the_segment_it_copies(two_branch):
    nodes = two_branch.graph.nodes
    assert nodes["b/trunk.stage4"]["params"] == nodes["trunk.stage4"]["params"] > 0


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("shared", {"trunk.stem", "trunk.stage1", "trunk.stage2", "trunk.stage3", "b/trunk.stage3"}),
        ("heads", {"a.head", "b.head", "c.head", "e.head"}),
        ("branches", {"b/trunk.stage3", "b/trunk.stage4", "c/trunk.stage4"}),
        ("trunk.stage4", {"trunk.stage4", "b/trunk.stage4", "c/trunk.stage4"}),
        ("b", {"b/trunk.stage4", "b.head"}),
        ("c.head", {"c.head"}),
    ],
)
def test_freeze_targets_name_parts_not_positions(two_branch, target, expected):
    assert nodes_for(two_branch.graph, SegmentRef.parse(target)) == expected


def test_phases_are_written_onto_nodes():
    text = TWO_BRANCH_SPEC + "train { phase heads { epochs = 1; freeze = [backbones] } phase all { epochs = 2 } }"
    graph = compile_text(text, "demo.mtl").graph
    assert graph.nodes["trunk.stem"]["frozen_in"] == ["heads"]
    assert graph.nodes["c/trunk.stage4"]["frozen_in"] == ["heads"]
    assert graph.nodes["a.head"]["frozen_in"] == []


def test_graph_json_round_trips_and_is_stable(two_branch):
    text = graph_to_json(two_branch.graph)
    again = graph_to_json(graph_from_json(text))
    assert text == again
    assert graph_to_json(compile_text(TWO_BRANCH_SPEC, "demo.mtl").graph) == text


GOLDEN_SPECS = sorted((ROOT / "specs").glob("**/*.mtl"))


@pytest.mark.parametrize("path", GOLDEN_SPECS, ids=lambda p: str(p.relative_to(ROOT / "specs")))
def test_golden_files_per_stage(path):
    """specs/<name>.mtl → golden/graph/<name>.json → golden/dot/<name>.dot, and golden/model/<name>.py.

    A change to any stage's output shows up as a diff of these files in review; regenerate them with
    ``MTDSL_REGENERATE_GOLDEN=1 pytest tests/test_graph.py`` when the change is intended.
    """
    relative = path.relative_to(ROOT)
    name = str(path.relative_to(ROOT / "specs").with_suffix("")).replace("/", "__")
    graph = compile_file(path).graph
    produced = {
        GOLDEN / "graph" / f"{name}.json": graph_to_json(graph),
        GOLDEN / "dot" / f"{name}.dot": to_dot(graph_from_json(graph_to_json(graph))).source,
        GOLDEN / "model" / f"{name}.py": generate_model_source(graph, relative.as_posix()),
    }
    for golden, text in produced.items():
        if REGENERATE:
            golden.parent.mkdir(exist_ok=True)
            golden.write_text(text)
        assert golden.exists(), f"{golden} is missing; create it with MTDSL_REGENERATE_GOLDEN=1"
        assert text == golden.read_text(), f"{golden} changed; rerun with MTDSL_REGENERATE_GOLDEN=1 if intended"
