"""docs/language.md stays true: its examples compile and its tables match the code.

* ```mtl blocks with a ``model`` line are complete specs: they must load and
  build a sharing graph; other ```mtl blocks are fragments and must parse.
* ```mtl-error blocks must fail with an mtdsl error; when a ```text block
  follows one directly, it is the error exactly as ``mtdsl compile pets.mtl``
  prints it.
* Every registered kind, every field and key, and the backbone segment table
  appear in the reference.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mtdsl.errors import MtdslError
from mtdsl.frontend.parser import parse
from mtdsl.graph.build import build_graph
from mtdsl.spec.load import load_text

DOC = Path(__file__).resolve().parents[1] / "docs" / "language.md"
TEXT = DOC.read_text(encoding="utf-8")
FENCE = re.compile(r"^```([A-Za-z0-9_-]*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
TINY_BACKBONES = {"test_resnet", "resnet18", "test_efficientnet"}


def _blocks() -> list[tuple[int, str, str]]:
    """(line, tag, body) of every fenced block, in order."""
    return [(TEXT.count("\n", 0, m.start()) + 1, m.group(1), m.group(2)) for m in FENCE.finditer(TEXT)]


BLOCKS = _blocks()
MTL = [(line, body) for line, tag, body in BLOCKS if tag == "mtl"]
COMPLETE = [(line, body) for line, body in MTL if re.search(r"^model ", body, re.MULTILINE)]
FRAGMENTS = [(line, body) for line, body in MTL if (line, body) not in COMPLETE]
ERRORS = [
    (line, body, BLOCKS[i + 1][2] if i + 1 < len(BLOCKS) and BLOCKS[i + 1][1] == "text" else None)
    for i, (line, tag, body) in enumerate(BLOCKS)
    if tag == "mtl-error"
]


def _ids(blocks) -> list[str]:
    return [f"line{block[0]}" for block in blocks]


def test_the_reference_has_examples():
    assert len(COMPLETE) >= 8 and FRAGMENTS and ERRORS
    untagged = [line for line, tag, _ in BLOCKS if tag == ""]
    assert not untagged, f"untagged code blocks at lines {untagged}: tag them mtl, mtl-error, sh or text"


@pytest.mark.parametrize("line, body", COMPLETE, ids=_ids(COMPLETE))
def test_complete_examples_compile(line, body):
    spec = load_text(body, "docs/language.md")
    graph = build_graph(spec)
    assert set(graph.graph["tasks"]) == set(spec.model.tasks)
    models = {backbone.model for backbone in spec.model.backbones.values()}
    assert models <= TINY_BACKBONES, f"use tiny backbones in examples, not {models - TINY_BACKBONES}"


@pytest.mark.parametrize("line, body", FRAGMENTS, ids=_ids(FRAGMENTS))
def test_fragments_parse(line, body):
    assert parse(body, "docs/language.md").statements


@pytest.mark.parametrize("line, body, shown", ERRORS, ids=_ids(ERRORS))
def test_error_examples_fail_as_shown(line, body, shown):
    with pytest.raises(MtdslError) as caught:
        build_graph(load_text(body, "pets.mtl"))
    if shown is not None:
        assert caught.value.render() == shown.rstrip("\n")


# ------------------------------------------------------------------ tables


def _mentioned(word: str) -> bool:
    return re.search(rf"`{re.escape(word)}\b", TEXT) is not None


def _fields(config) -> list[str]:
    """Fields a spec writes by name (not ``fixed``'s per-task ratios, written as TASK = ratio)."""
    hidden = ("kind", "name", getattr(config, "keywords_field", None))
    return [name for name in config.model_fields if name not in hidden]


def _registries():
    from mtdsl.nn.heads import HEAD_CONFIGS
    from mtdsl.nn.losses import LOSS_CONFIGS
    from mtdsl.spec.augment import AUGMENTS
    from mtdsl.spec.data import DATASETS
    from mtdsl.spec.model import BACKBONES
    from mtdsl.spec.training import OPTIMIZERS, SAMPLERS, SCHEDULES, WEIGHTINGS

    return [AUGMENTS, BACKBONES, DATASETS, HEAD_CONFIGS, LOSS_CONFIGS, OPTIMIZERS, SCHEDULES, SAMPLERS, WEIGHTINGS]


def test_every_kind_and_field_is_documented():
    from mtdsl.spec.model import TASK_KINDS
    from mtdsl.spec.training import PhaseSpec, Ramp, TrainSpec

    missing = []
    for registry in _registries():
        for kind in registry.kinds():
            config = registry.get(kind)
            missing += [f"{registry.what} {kind}"] if not _mentioned(kind) else []
            missing += [f"{registry.what} {kind}: {field}" for field in _fields(config) if not _mentioned(field)]
    missing += [f"task kind {kind}" for kind in TASK_KINDS if not _mentioned(kind)]
    missing += [f"train.{key}" for key in TrainSpec.model_fields
                if key not in ("phases", "tasks") and not _mentioned(key)]
    missing += [f"phase.{key}" for key in _fields(PhaseSpec) if not _mentioned(key)]
    missing += [f"ramp.{key}" for key in _fields(Ramp) if key not in TEXT]
    assert not missing, f"docs/language.md does not mention: {', '.join(missing)}"


def test_every_task_key_is_documented():
    from mtdsl.spec.lower import MODEL_TASK_KEYS, TRAIN_TASK_KEYS

    rows = {m.group(1) for m in re.finditer(r"^\| `(\w+)` \|", TEXT, re.MULTILINE)}
    missing = [key for key in MODEL_TASK_KEYS + TRAIN_TASK_KEYS if key not in rows]
    assert not missing, f"task keys without a table row: {missing}"


def test_train_defaults_match_the_table():
    from mtdsl.spec.training import TrainSpec

    defaults = TrainSpec()
    for key in ("epochs", "batch_size", "seed", "workers", "precision", "on_corrupt", "warmup"):
        value = getattr(defaults, key)
        assert re.search(rf"^\| `{key}` \| `{value}` \|", TEXT, re.MULTILINE), f"train.{key} default is {value}"
    for key in ("optimizer", "schedule", "sampling", "weighting"):
        kind = getattr(defaults, key).kind
        assert re.search(rf"^\| `{key}` \| `{kind}(\(\))?` \|", TEXT, re.MULTILINE), f"train.{key} default is {kind}"
    for key in ("channels_last", "compile"):
        assert re.search(rf"^\| `{key}` \| `{str(getattr(defaults, key)).lower()}` \|", TEXT, re.MULTILINE)


def test_segment_table_matches_timm():
    from mtdsl.nn.backbone import backbone_info

    models = ("resnet18", "resnet101", "efficientnet_b3")
    infos = [backbone_info(model) for model in models]
    header = "| segment | stride | " + " | ".join(f"{model} channels" for model in models) + " |"
    assert header in TEXT
    for index, segment in enumerate(infos[0].segments):
        assert all(info.segments[index].reduction == segment.reduction for info in infos)
        row = f"| {segment.name} | {segment.reduction} | " + " | ".join(
            str(info.segments[index].channels) for info in infos
        ) + " |"
        assert row in TEXT, f"expected the row {row}"
