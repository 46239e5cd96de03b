"""A sharing-graph node's facts as a typed record (mtdsl.graph.facts): written and read back unchanged,
and a missing, unknown or contradictory fact names the node."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtdsl.graph.facts import HeadFacts, SegmentFacts, facts_of
from mtdsl.graph.serialize import graph_from_json

GOLDEN_GRAPHS = sorted((Path(__file__).parent / "golden" / "graph").glob("*.json"))


@pytest.mark.parametrize("path", GOLDEN_GRAPHS, ids=lambda p: p.stem)
def test_every_node_of_every_spec_round_trips_through_its_record(path):
    graph = graph_from_json(path.read_text(encoding="utf-8"))
    for node, data in graph.nodes(data=True):
        record = facts_of(node, data)
        assert record.attributes() == dict(data)
        assert ".".join(record.place) == data["module"]


def _branch() -> dict:
    return SegmentFacts(kind="branch", label="stage4 (b)", backbone="trunk", model="test_resnet", segment="stage4",
                        owner="b", channels=64, stride=32).attributes()


def test_a_branch_lives_under_its_owner_and_a_head_under_its_task():
    assert facts_of("b/trunk.stage4", _branch()).place == ("branches", "b", "stage4")
    head = HeadFacts(label="b head", task="b", task_kind="classify", in_channels=64, num_outputs=3, channels=3,
                     stride=0)
    assert head.module == "heads.b" and "num_levels" not in head.attributes()


@pytest.mark.parametrize("change, message", [
    ({"kind": "segment"}, "has kind 'segment', not one of"),
    ({"colour": "red"}, "holds facts no SegmentFacts has: colour"),
    ({"module": "backbone.trunk.stage4"}, "says its module is 'backbone.trunk.stage4'"),
])
def test_a_wrong_fact_names_the_node(change, message):
    with pytest.raises(ValueError, match=r"graph node 'b/trunk\.stage4'") as caught:
        facts_of("b/trunk.stage4", {**_branch(), **change})
    assert message in str(caught.value)


def test_a_missing_fact_names_the_node():
    data = _branch()
    del data["backbone"]
    with pytest.raises(ValueError, match=r"graph node 'b/trunk\.stage4' \(branch\).*backbone"):
        facts_of("b/trunk.stage4", data)
