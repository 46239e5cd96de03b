"""Datasets that label the same photos split them alike, so a multi-task model never trains on a held-out photo.

The thesis' pets model reads breeds from a CSV, head boxes from a COCO file and
outlines from mask files, all over one ``images/`` folder. Before ratio splits
were drawn by photo, two thirds of each task's test photos were another task's
training photos.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, requires_shared_data
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from mtdsl.api import compile_text
from mtdsl.errors import DataError
from mtdsl.spec.data import SyntheticDataset
from mtdsl.spec.load import load_spec
from mtdsl.spec.streams import plan_streams
from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.data.sources import photo_split, ratio_split
from mtdsl.train.data.tasks import task_labels

RATIOS = st.sampled_from([(0.7, 0.15, 0.15), (0.8, 0.2), (0.5, 0.5), (0.6, 0.1, 0.3)])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, list[str]]:
    images = tmp_path_factory.mktemp("photos")
    for index in range(40):
        (images / f"{index:02d}.jpg").touch()
    (images / "notes.txt").touch()  # not a photo: no part of the split
    return images, [str(images / f"{index:02d}.jpg") for index in range(40)]


def _part_of(images: list[str], parts: dict[str, np.ndarray]) -> dict[str, str]:
    return {images[index]: name for name, indices in parts.items() for index in indices}


@given(first=st.sets(st.integers(0, 39), min_size=1), second=st.sets(st.integers(0, 39), min_size=1),
       ratios=RATIOS, seed=st.integers(0, 2**31 - 1), shuffle=st.randoms(use_true_random=False))
def test_a_photo_two_datasets_label_is_in_the_same_part_of_both(folder, first, second, ratios, seed, shuffle):
    _, photos = folder
    one, other = [photos[i] for i in first], [photos[i] for i in second]
    shuffle.shuffle(other)  # a manifest lists its rows in its own order
    parts_one, parts_other = _part_of(one, photo_split(one, ratios, seed)), _part_of(other, photo_split(other, ratios,
                                                                                                       seed))
    assert set(parts_one) == set(one) and set(parts_other) == set(other)  # every example has one part
    assert all(parts_one[photo] == parts_other[photo] for photo in set(one) & set(other))


@given(ratios=RATIOS, seed=st.integers(0, 2**31 - 1))
def test_a_dataset_that_labels_its_whole_folder_gets_the_ratios_exactly(folder, ratios, seed):
    _, photos = folder
    parts = photo_split(photos, ratios, seed)
    exact = ratio_split(len(photos), ratios, seed)
    assert {name: len(part) for name, part in parts.items()} == {name: len(part) for name, part in exact.items()}
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(len(photos)))


def test_a_photo_listed_twice_is_in_one_part(folder):
    _, photos = folder
    twice = photos[:10] + photos[:10]
    part_of = {}
    for name, indices in photo_split(twice, (0.5, 0.5), 0).items():
        for index in indices:
            assert part_of.setdefault(twice[index], name) == name


# ------------------------------------------------------------------ through the loaders, as a spec reads them


def _manifests(root: Path, count: int = 24) -> Path:
    images = root / "images"
    images.mkdir()
    for index in range(count):
        Image.new("RGB", (16, 16), (10 * index % 255, 80, 120)).save(images / f"{index}.png")
    for name, labels, step in (("breeds", ["cat", "dog"], 1), ("sizes", ["small", "large"], 2)):
        with (root / f"{name}.csv").open("w", newline="") as file:  # sizes labels every other photo
            writer = csv.writer(file)
            writer.writerow(["file_name", "label"])
            writer.writerows((f"{index}.png", labels[index // step % 2]) for index in reversed(range(0, count, step)))
    return root


def _spec(root: Path, sizes_split: str = "split = 0.5/0.25/0.25") -> str:
    return f"""
model shared
input 3x16x16
backbone trunk = timm("test_resnet")
dataset breeds = csv("{root / 'breeds.csv'}", images = "{root / 'images'}", label_column = "label",
                     split = 0.5/0.25/0.25)
dataset sizes = csv("{root / 'sizes.csv'}", images = "{root / 'images'}", label_column = "label", {sizes_split})
task breed: classify(breeds) {{ classes = [cat, dog] }}
task size: classify(sizes) {{ classes = [small, large] }}
train {{ batch_size = 2; epochs = 1; workers = 0 }}
"""


def _loaders(text: str) -> StreamLoaders:
    spec = compile_text(text).spec
    labels = {label.task: label for label in task_labels(spec)}
    return StreamLoaders(plan_streams(spec), spec.datasets, labels, image_size=(16, 16), mean=(0.5,) * 3,
                         std=(0.5,) * 3, seed=0, workers=0, on_corrupt="error", device=torch.device("cpu"))


def test_two_manifests_over_one_folder_hold_out_the_same_photos(tmp_path):
    loaders = _loaders(_spec(_manifests(tmp_path)))
    photos = {(stream.label, split): {str(image) for image in loaders.splits[index][split].examples.images}
              for index, stream in enumerate(loaders.streams) for split in ("train", "val", "test")}
    for held in ("val", "test"):
        assert not photos[("breed", held)] & photos[("size", "train")]
        assert not photos[("size", held)] & photos[("breed", "train")]
    assert photos[("size", "test")] <= photos[("breed", "test")]  # sizes labels a subset of breeds' photos


def test_streams_that_train_on_the_same_photos_are_told_of_joint_sampling(tmp_path):
    root = _manifests(tmp_path)
    loaders = _loaders(_spec(root))
    breeds_train = {str(image) for image in loaders.splits[0]["train"].examples.images}
    sizes_train = {str(image) for image in loaders.splits[1]["train"].examples.images}
    shared = len(breeds_train & sizes_train)
    assert shared > 0
    assert loaders.shared == (["breeds", "sizes"], shared)
    note = [line for line in loaders.describe() if line.startswith("note:")]
    assert note == [f"note: datasets breeds, sizes label {shared} of the same training photos, and each stream passes "
                    "them through the backbone: `sampling = joint` passes each photo once for every task that labels "
                    'it (docs/training.md, "Joint sampling")']
    joint = _loaders(_spec(root).replace("workers = 0 }", "workers = 0; sampling = joint }"))
    assert joint.shared == ([], 0) and not any(line.startswith("note:") for line in joint.describe())


@given(first=st.sets(st.integers(0, 29)), second=st.sets(st.integers(0, 29)))
def test_only_photos_two_streams_train_on_are_counted(first, second):
    from mtdsl.train.data.examples import Examples
    from mtdsl.train.data.shared_photos import photos_trained_twice

    def examples(indices):
        return {"train": Examples(tuple(f"/photos/{i}.jpg" for i in sorted(indices)), {})}

    splits = {"a": examples(first), "b": examples(second)}
    names, count = photos_trained_twice(splits, [["a"], ["b"]])
    assert count == len(first & second)
    assert names == (["a", "b"] if first & second else [])
    assert photos_trained_twice(splits, [["a", "b"]]) == ([], 0)  # counted across streams, not within one


def test_datasets_that_split_shared_photos_differently_are_refused_before_training(tmp_path):
    text = _spec(_manifests(tmp_path), sizes_split="split = 0.5/0.25/0.25, seed = 7")
    with pytest.raises(DataError, match=r"photos of dataset '(breeds|sizes)' are training photos of dataset") as error:
        _loaders(text)
    assert error.value.dataset in {"breeds", "sizes"}
    assert "same split" in error.value.hint


@pytest.mark.data
@requires_shared_data("oxford-pets-3class")
def test_the_thesis_pets_tasks_hold_out_the_same_photos():
    """specs/real/pets.mtl: breeds (CSV), head boxes (COCO, the photos with a head) and outlines (masks)."""
    loaders = _loaders((ROOT / "specs" / "real" / "pets.mtl").read_text().replace(
        "${spec_dir}", str(ROOT / "specs" / "real")))
    photos = {(stream.label, split): {str(image) for image in loaders.splits[index][split].examples.images}
              for index, stream in enumerate(loaders.streams) for split in ("train", "val", "test")}
    labels = {label for label, _ in photos}
    assert len(labels) == 3
    for held in ("val", "test"):
        for task in labels:
            assert photos[(task, held)]
            assert not any(photos[(task, held)] & photos[(other, "train")] for other in labels)
    trained_twice = set.union(*(photos[(a, "train")] & photos[(b, "train")] for a in labels for b in labels if a < b))
    assert loaders.shared == (["breeds", "heads", "trimaps"], len(trained_twice))  # the note joint sampling answers


def _multi_dataset_specs() -> list[Path]:
    return [path for path in sorted(ROOT.glob("specs/**/*.mtl"))
            if len([name for name, config in load_spec(path).datasets.items()
                    if not isinstance(config, SyntheticDataset)]) > 1]


@pytest.mark.data
@pytest.mark.parametrize("path", _multi_dataset_specs(), ids=lambda path: str(path.relative_to(ROOT / "specs")))
def test_no_shipped_spec_trains_on_a_photo_another_of_its_datasets_holds_out(path):
    """specs/pets_coco.mtl split its head boxes 0.8/0.2 and its breeds 0.7/0.15/0.15 over the same photos."""
    spec = load_spec(path)
    missing = [name for name, config in spec.datasets.items() for key in ("root", "path", "annotations", "images")
               if isinstance(getattr(config, key, None), str) and not Path(getattr(config, key)).exists()]
    if missing:
        pytest.skip(f"{path.name}: the data of {', '.join(sorted(set(missing)))} is not on this machine")
    labels = {label.task: label for label in task_labels(spec)}
    StreamLoaders(plan_streams(spec), spec.datasets, labels, image_size=(32, 32), mean=(0.5,) * 3, std=(0.5,) * 3,
                  seed=0, workers=0, on_corrupt="error", device=torch.device("cpu"))  # check_shared_photos runs here
