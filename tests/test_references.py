"""References are parsed once: ``trunk.stage3`` becomes a SegmentRef at lowering, node ids are written in one place.

Two kinds of check. Properties: any reference the grammar accepts lowers to
the SegmentRef of its parts and prints back as written; every node of a built
graph has the id its typed key writes. And a scan of ``src/mtdsl``: no module
takes dotted or slashed text apart again, except the few places listed in
:data:`ALLOWED`, each for text that is not a model reference.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from conftest import TWO_BRANCH_SPEC
from hypothesis import given
from hypothesis import strategies as st

import mtdsl
from mtdsl.errors import Source
from mtdsl.frontend.parser import parse
from mtdsl.graph.build import INPUT, build_graph
from mtdsl.graph.node_keys import HeadNode, NeckNode, SegmentNode
from mtdsl.spec.load import load_text
from mtdsl.spec.lower import lower
from mtdsl.spec.references import SegmentRef
from mtdsl.spec.training import PhaseSpec

SOURCE = Path(mtdsl.__file__).resolve().parent

KEYWORDS = ("model", "let", "input", "backbone", "neck", "dataset", "task", "train", "phase")
#: Any word the grammar takes as a part of a dotted reference (keywords included).
parts = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True) | st.sampled_from(KEYWORDS)
#: A bare name: ``true`` and ``false`` are booleans, not names.
bare = parts.filter(lambda word: word not in ("true", "false"))


def _lowered(branch: str, tap: str, freeze: str):
    text = f"""model demo
backbone trunk = timm("test_resnet")
dataset d = synthetic()
task t: classify(d) {{ classes = 2; branch = {branch}; tap = {tap} }}
train {{ phase p {{ epochs = 1; freeze = {freeze} }} }}
"""
    return lower(parse(text, "refs.mtl"), Source("refs.mtl", text), {})


@given(owner=parts, segment=parts, whole=bare)
def test_a_reference_lowers_to_its_parts_and_prints_as_written(owner, segment, whole):
    written = f"{owner}.{segment}"
    spec = _lowered(branch=written, tap=whole, freeze=f"[{written}, {whole}]")
    task, phase = spec.model.tasks["t"], spec.train.phases[0]

    assert task.branch == SegmentRef(owner, segment) and str(task.branch) == written
    assert task.tap == SegmentRef(whole) and task.tap.is_whole and str(task.tap) == whole
    assert phase.freeze == [SegmentRef(owner, segment), SegmentRef(whole)]
    # On the wire a reference is its text, and the text reads back as the same reference.
    assert json.loads(spec.model.model_dump_json())["tasks"]["t"]["branch"] == written
    assert PhaseSpec.model_validate_json(phase.model_dump_json()) == phase
    assert SegmentRef.parse(written) == task.branch


@given(first=parts, rest=st.lists(parts, min_size=2, max_size=3))
def test_a_reference_with_more_dots_keeps_them_in_its_segment(first, rest):
    written = ".".join([first, *rest])
    branch = _lowered(branch=written, tap="trunk", freeze="[]").model.tasks["t"].branch
    assert branch == SegmentRef(first, ".".join(rest)) and str(branch) == written


NECK_SPEC = """
model keys
input 3x64x64
backbone trunk = timm("test_efficientnet")
neck pyramid = bifpn(trunk, channels = 32, repeats = 1, max_level = 5)
dataset d = synthetic(count = 8, size = 64)
task shape: classify(d) { classes = 3 }
task colour: classify(d) { classes = 3; branch = trunk.stage3 }
task large: binary(d) { branch = colour.stage4; label = large }
task objects: detect(d) { classes = [circle, square, triangle] }
"""


def test_every_graph_node_has_the_id_its_typed_key_writes():
    for text in (TWO_BRANCH_SPEC, NECK_SPEC):
        graph = build_graph(load_text(text))
        kinds = set()
        for node, data in graph.nodes(data=True):
            kinds.add(data["kind"])
            if data["kind"] == "input":
                assert node == INPUT
            elif data["kind"] == "head":
                assert HeadNode(data["task"]).id == node
            elif data["kind"] == "neck":
                assert NeckNode(data["neck"]).id == node
            else:
                assert SegmentNode(data["backbone"], data["segment"], owner=data["owner"]).id == node
    assert kinds == {"input", "backbone", "branch", "neck", "head"}


# ------------------------------------------------------------------ the scan

SPLITTERS = frozenset({"split", "rsplit", "partition", "rpartition"})
SEPARATORS = frozenset({".", "/"})

#: (file under src/mtdsl, function) → why it may take dotted or slashed text apart:
#: none of it names a part of the model.
ALLOWED = {
    ("spec/references.py", "SegmentRef.parse"): "the one parser, for references that reached the spec as text",
    ("spec/lower.py", "_Lowering._record"): "a field path such as 'lr.value', for error spans",
    ("nn/pretrained.py", "lukemelas_to_timm"): "state-dict keys",
    ("nn/pretrained.py", "_is_classifier_key"): "state-dict keys",
    ("codegen/literal.py", "imported_names"): "module names in import statements",
    ("train/run/folder.py", "RunFolder._written_drawings"): "a run's drawing file names (<dataset>.<tasks>.png)",
    ("graph/parts.py", "_module_of"): "parameter names (state-dict keys), to find the module that holds one",
    # timm's model names: an architecture and its pretrained tag (``resnet18.a1_in1k``), or ``hf-hub:…``
    ("graph/backbones.py", "architecture"): "a timm model name into its architecture and pretrained tag",
    ("graph/backbones.py", "is_known_model"): "a timm model name into its architecture and pretrained tag",
    ("graph/backbones.py", "matching_models"): "a pattern for timm names, with a tag or without",
    ("graph/backbone_table.py", "matching"): "a pattern for timm names: a tag or hub pattern is not the table's",
    ("graph/backbones.py", "read_backbone"): "timm's output format enum as text (Format.NHWC)",
    ("graph/backbones.py", "_parameters"): "a timm module path (a bare parameter has no dot)",
    ("graph/backbones.py", "_unbuildable"): "a Hugging Face repository name, to suggest its model's name",
    ("graph/checks.py", "_unknown_model"): "a timm model name, to name the pretrained tag it asked for",
}


def text_splits(tree: ast.AST) -> list[tuple[str, int]]:
    """``(function, line)`` of each ``x.partition(".")``-like call (``/`` too) and each ``"." in x`` test in ``tree``.

    ``"/" in x`` is not counted: it asks whether text is a path or a per-class metric (``AP/car``).
    """
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope = [*scope, node.name]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SPLITTERS:
            if node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in SEPARATORS:
                found.append((".".join(scope), node.lineno))
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and node.left.value == ".":
            if any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
                found.append((".".join(scope), node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(tree, [])
    return found


def test_the_scan_finds_the_ways_references_used_to_be_split():
    old = '''
def paths(task):
    owner, _, segment = (task.tap or "").partition(".")
    first = task.branch.split(".")[0]
    return "." not in task.tap, node.rpartition("/"), "/" in path
'''
    assert text_splits(ast.parse(old)) == [("paths", 3), ("paths", 4), ("paths", 5), ("paths", 5)]


def test_no_module_splits_references_again():
    splits = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for function, line in text_splits(ast.parse(path.read_text(encoding="utf-8"))):
            splits.setdefault((path.relative_to(SOURCE).as_posix(), function), []).append(line)
    unexpected = {place: lines for place, lines in splits.items() if place not in ALLOWED}
    assert not unexpected, (
        f"these places take dotted or slashed text apart: {unexpected}; read SegmentRef.owner/.segment "
        "(mtdsl.spec.references) or a node key's fields (mtdsl.graph.node_keys) instead"
    )
    assert set(splits) == set(ALLOWED), f"allowed places that no longer split text: {set(ALLOWED) - set(splits)}"
