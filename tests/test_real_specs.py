"""The real-data experiment specs in specs/real/ compile, and read the shared datasets they name."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, SHARED_DATA, requires_shared_data

from mtdsl.compare.single_task import single_task_specs
from mtdsl.compiler import compile_file, compile_spec
from mtdsl.spec.load import load_spec

REAL_SPECS = sorted((ROOT / "specs" / "real").glob("*.mtl"))
#: Dataset fields that name a file or folder.
PATH_FIELDS = ("root", "path", "annotations", "images", "masks")
PLANTS = {"proportional": "plants", "fixed": "plants_fixed", "dynamic": "plants_dynamic"}


def test_every_experiment_has_a_spec():
    others = {"plants_adamw", "plants_sgd", "multilabel", "pets", "pets_long", "pets_joint", "road", "pet_heads"}
    assert {path.stem for path in REAL_SPECS} == {*PLANTS.values(), *others}


@pytest.mark.parametrize("path", REAL_SPECS, ids=lambda p: p.stem)
def test_real_spec_compiles_on_the_offline_pretrained_backbone(path):
    compilation = compile_file(path)
    spec = compilation.spec
    (backbone,) = spec.model.backbones.values()
    assert (backbone.model, backbone.pretrained) == ("tf_efficientnet_lite0", "imagenet")
    assert spec.model.input.size == (3, 160, 160)
    assert set(compilation.graph.graph["tasks"]) == set(spec.model.tasks)
    # Every layer trains last; the multi-task experiments first train the heads alone (the detector reference does not).
    assert [phase.name for phase in spec.train.phases] in (["heads", "all"], ["all"])


@pytest.mark.parametrize("path", REAL_SPECS, ids=lambda p: p.stem)
def test_real_spec_splits_into_single_task_specs_that_compile(path):
    spec = load_spec(path)
    for name, single in single_task_specs(spec).items():
        assert list(compile_spec(single).graph.graph["tasks"]) == [name]


@pytest.mark.parametrize("path", REAL_SPECS, ids=lambda p: p.stem)
def test_real_spec_reads_the_shared_data_beside_the_repository(path):
    for dataset in load_spec(path).datasets.values():
        for field in PATH_FIELDS:
            if isinstance(getattr(dataset, field, None), str):
                assert Path(getattr(dataset, field)).resolve().is_relative_to(SHARED_DATA.resolve())


def test_the_plants_specs_differ_only_in_name_and_sampling():
    specs = {kind: load_spec(ROOT / "specs" / "real" / f"{name}.mtl") for kind, name in PLANTS.items()}
    assert {kind: spec.train.sampling.kind for kind, spec in specs.items()} == {kind: kind for kind in PLANTS}

    def comparable(spec):
        return (spec.model.model_copy(update={"name": ""}), spec.datasets,
                spec.train.model_copy(update={"sampling": None}), spec.variables)

    reference = comparable(specs["proportional"])
    assert all(comparable(spec) == reference for spec in specs.values())


def test_pets_joint_is_pets_long_sampled_jointly():
    joint, long = (load_spec(ROOT / "specs" / "real" / f"{name}.mtl") for name in ("pets_joint", "pets_long"))
    assert (joint.train.sampling.kind, long.train.sampling.kind) == ("joint", "proportional")
    assert joint.model.model_copy(update={"name": ""}) == long.model.model_copy(update={"name": ""})
    assert joint.datasets == long.datasets
    assert joint.train.model_copy(update={"sampling": None}) == long.train.model_copy(update={"sampling": None})
    assert [stream.label for stream in joint.streams] == ["breed+pet+outline"]


def test_epochs_are_set_per_phase_from_the_command_line():
    spec = load_spec(ROOT / "specs" / "real" / "pets.mtl", {"heads_epochs": "1", "all_epochs": "1"})
    assert [phase.epochs for phase in spec.train.phases] == [1, 1] and spec.train.total_epochs == 2


@pytest.mark.data
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is absent (real datasets live beside the repo)")
@pytest.mark.parametrize("path", REAL_SPECS, ids=lambda p: p.stem)
def test_every_file_a_real_spec_names_exists(path):
    for dataset in load_spec(path).datasets.values():
        for field in (*PATH_FIELDS, "vocabulary", "classes"):
            value = getattr(dataset, field, None)
            if isinstance(value, str):
                assert Path(value).exists(), f"{path.name}: dataset {dataset.name} {field} = {value}"


@pytest.mark.data
@requires_shared_data("coco128")
def test_every_multilabel_class_has_positives_in_every_split():
    from mtdsl.train.data.datasets import read_splits
    from mtdsl.train.data.tasks import task_labels

    spec = load_spec(ROOT / "specs" / "real" / "multilabel.mtl")
    parts = read_splits(spec.datasets["coco"], task_labels(spec))
    assert set(parts) == {"train", "val", "test"}
    for task in spec.model.tasks:
        positives = {split: int(part.targets[task].sum()) for split, part in parts.items()}
        assert positives["train"] >= 4 and positives["val"] >= 1 and positives["test"] >= 1, (task, positives)
