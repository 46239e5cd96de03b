"""A task kind is one registered unit: its folder, ``mtdsl/kinds/<kind>/``, and one line per table.

The rest of the code asks a kind (``TASK_KINDS[kind].dense``) or looks it up in a layer's table;
none of it compares a kind's name. These tests keep it so: every kind is registered in every
table it needs, and no module outside a kind's folder spells a kind's name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import mtdsl
from mtdsl.export.outputs import FINISHES, OUTPUTS
from mtdsl.kinds import TASK_KINDS, TaskKind
from mtdsl.kinds.registry import KindTable
from mtdsl.nn.heads import HEAD_BUILDERS
from mtdsl.nn.losses import LOSS_BUILDERS
from mtdsl.predict.predictor import DECODERS
from mtdsl.predict.results import SUMMARIES
from mtdsl.predict.writing import DRAWN
from mtdsl.render.label_results import LABEL_OUTPUTS
from mtdsl.spec.data import DATASETS
from mtdsl.spec.heads import HEAD_CONFIGS
from mtdsl.spec.losses import LOSS_CONFIGS
from mtdsl.train.data.examples import LABELLED
from mtdsl.train.data.labels import ENCODERS
from mtdsl.train.metrics.metric import METRICS
from mtdsl.train.run.showcase import SHOWN

SOURCE = Path(mtdsl.__file__).resolve().parent
KINDS = SOURCE / "kinds"

#: Each layer's table of kinds, by the name it is bound to, and which kinds need an entry there.
TABLES = {
    "METRICS": (METRICS, lambda kind: True),
    "ENCODERS": (ENCODERS, lambda kind: kind.image_labels),
    "LABELLED": (LABELLED, lambda kind: kind.takes_classes),
    "SHOWN": (SHOWN, lambda kind: True),
    "LABEL_OUTPUTS": (LABEL_OUTPUTS, lambda kind: kind.image_labels),
    "DECODERS": (DECODERS, lambda kind: True),
    "SUMMARIES": (SUMMARIES, lambda kind: True),
    "DRAWN": (DRAWN, lambda kind: True),
    "OUTPUTS": (OUTPUTS, lambda kind: True),
    "FINISHES": (FINISHES, lambda kind: True),
}

#: Modules outside the kinds' folders that may still spell a kind's name, each with why.
#: Keep it short: a name here is a fact that has not moved into its kind yet.
ALLOWED: dict[tuple[str, str], str] = {
    ("train/run/fingerprints.py", "segment"): "what graph.json called a backbone node before issue 21 renamed it, "
    "kept inside model fingerprints so checkpoints written before still resume",
    **{("codegen/templates/train_loop.py", name): "the template's sample constants, replaced when train.py is "
       "generated" for name in ("classify", "binary", "detect", "segment")},
    ("train/data/formats/coco_file.py", "keypoints"): "COCO's own field (a category's and an annotation's "
    "'keypoints'), which the file's reader keeps for the readers of points; not the task kind",
}


def test_the_six_kinds_are_registered_in_order():
    assert list(TASK_KINDS) == ["classify", "binary", "multilabel", "detect", "segment", "keypoints"]
    assert all(isinstance(kind, TaskKind) and kind.name == name for name, kind in TASK_KINDS.items())


def test_the_kinds_answer_the_facts_the_code_asks():
    assert TASK_KINDS.where(lambda kind: kind.image_labels) == ("classify", "binary", "multilabel")
    assert TASK_KINDS.where(lambda kind: kind.dense) == ("detect", "segment", "keypoints")
    assert TASK_KINDS.where(lambda kind: not kind.takes_classes) == ("binary",)
    assert TASK_KINDS.where(lambda kind: kind.yes_no) == ("binary",)
    assert TASK_KINDS.where(lambda kind: kind.dice) == ("segment",)
    assert TASK_KINDS.where(lambda kind: kind.crops) == ("detect",)
    assert TASK_KINDS.where(lambda kind: kind.one_class is not None) == ("classify", "segment")
    assert TASK_KINDS["binary"].num_outputs(0) == 1 and TASK_KINDS["classify"].num_outputs(5) == 5


@pytest.mark.parametrize("name", list(TASK_KINDS))
def test_a_kinds_heads_and_losses_are_registered_and_built(name):
    kind = TASK_KINDS[name]
    assert kind.heads and kind.losses
    for head in kind.heads:
        assert head in HEAD_CONFIGS and head in HEAD_BUILDERS
        assert name in HEAD_CONFIGS.get(head).task_kinds  # the config reads the pairing back
    for loss in kind.losses:
        assert loss in LOSS_CONFIGS and loss in LOSS_BUILDERS
        assert name in LOSS_CONFIGS.get(loss).task_kinds


@pytest.mark.parametrize("name", list(TASK_KINDS))
def test_some_dataset_format_serves_each_kind(name):
    assert any(name in DATASETS.get(format_).serves for format_ in DATASETS.kinds())


@pytest.mark.parametrize("table", TABLES)
def test_every_kind_is_registered_in_every_table_it_needs(table):
    entries, needs = TABLES[table]
    assert entries.missing(needs) == []
    assert set(entries) <= set(TASK_KINDS)


def test_a_table_refuses_an_unknown_kind_and_a_second_entry():
    table: KindTable[int] = KindTable("demo", loads="mtdsl.kinds")
    table.register("detect")(1)
    with pytest.raises(ValueError, match="demo for 'pose', which is not a registered task kind"):
        table.register("pose")(2)
    with pytest.raises(ValueError, match="task kind 'detect' has two demos"):
        table.register("detect")(3)


def test_every_kind_has_a_folder_with_its_modules():
    folders = {path.name for path in KINDS.iterdir() if (path / "kind.py").is_file()}
    assert folders == set(TASK_KINDS)
    for name in TASK_KINDS:
        for module in ("train.py", "predict.py", "export.py"):
            assert (KINDS / name / module).is_file(), f"{name}/{module}"


def _docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def kind_names_outside_their_folders() -> list[tuple[str, int, str]]:
    """``(path, line, name)`` of each string constant that spells a kind's name outside ``kinds/<kind>/``
    (docstrings, doctests included, are prose and do not count)."""
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).as_posix()
        if relative.startswith("kinds/") and relative.count("/") >= 2:
            continue  # a kind's own folder
        tree = ast.parse(path.read_text(encoding="utf-8"))
        prose = _docstrings(tree)
        found += [(relative, node.lineno, node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and node.value in TASK_KINDS and id(node) not in prose]
    return found


def test_no_module_outside_a_kinds_folder_names_a_kind():
    named = [f"{path}:{line}: '{name}'" for path, line, name in kind_names_outside_their_folders()
             if (path, name) not in ALLOWED]
    assert not named, ("ask the kind (TASK_KINDS[kind].<fact>) or register in a table from the kind's folder "
                       "instead of comparing its name:\n  " + "\n  ".join(named))


def test_a_kind_is_imported_outside_its_folder_only_by_its_registration_lines():
    """Adding a kind touches its folder plus one line per registration module: nothing else imports it."""
    registrations = {"kinds/__init__.py": "kind", "train/kinds.py": "train", "render/kinds.py": "render",
                     "predict/kinds.py": "predict", "export/kinds.py": "export"}
    for name in TASK_KINDS:
        found = []
        for path in sorted(SOURCE.rglob("*.py")):
            relative = path.relative_to(SOURCE).as_posix()
            if relative.startswith(f"kinds/{name}/"):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"mtdsl.kinds.{name}"):
                    found.append((relative, node.module, tuple(alias.name for alias in node.names)))
        expected = [(module, f"mtdsl.kinds.{name}", (layer,)) for module, layer in registrations.items()
                    if (KINDS / name / f"{layer}.py").is_file()]
        assert sorted(found) == sorted(expected), name


def test_every_allowance_is_still_needed():
    used = {(path, name) for path, _, name in kind_names_outside_their_folders()}
    assert set(ALLOWED) - used == set()


def test_the_adding_a_kind_page_names_every_table_and_module():
    """docs/task_kinds.md's steps stay true: each table it names is one a kind registers in, and each
    module it names exists and imports every kind's module of its layer."""
    page = (SOURCE.parents[1] / "docs" / "task_kinds.md").read_text(encoding="utf-8")
    steps = page.split("## Adding a task kind", 1)[1]
    named = {name for name in re.findall(r"`([A-Z_]+)`", steps) if name != "TASK_KINDS"}
    assert named == set(TABLES)
    for layer, module in (("kind", "kinds/__init__.py"), ("train", "train/kinds.py"), ("render", "render/kinds.py"),
                          ("predict", "predict/kinds.py"), ("export", "export/kinds.py")):
        assert f"`{module}`" in steps, module
        text = (SOURCE / module).read_text(encoding="utf-8")
        needed = TASK_KINDS.where(lambda kind: kind.image_labels) if layer == "render" else tuple(TASK_KINDS)
        for name in needed:
            assert f"from mtdsl.kinds.{name} import {layer} as" in text, f"{module} misses {name}"

