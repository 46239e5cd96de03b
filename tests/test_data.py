"""The training data layer: synthetic shapes, dataset readers, splits, targets and transforms."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, requires_shared_data
from PIL import Image

from mtdsl.errors import DataError
from mtdsl.spec.data import CsvDataset, FolderDataset, JsonDataset, SyntheticDataset
from mtdsl.train.data.datasets import ImageDataset, collate, normalization, read_splits
from mtdsl.train.data.synthetic import COLOURS, SHAPES, SYNTHETIC_FIELDS, synthetic_labels, synthetic_sample
from mtdsl.train.data.tasks import TaskLabels, task_labels

STATS = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def _image(path: Path, colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (20, 14)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(abs(hash(path.name)) % 2**32).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    pixels[:, : size[0] // 2] = colour
    Image.fromarray(pixels).save(path)
    return path


def _class_folders(root: Path, counts: dict[str, int]) -> None:
    for name, count in counts.items():
        for i in range(count):
            _image(root / name / f"{name}_{i}.png")


def _dataset(examples, tasks, train=True, **kwargs) -> ImageDataset:
    return ImageDataset(examples, tasks, image_size=(16, 16), train=train, **STATS, **kwargs)


# ---------------------------------------------------------------- synthetic


def test_synthetic_samples_are_reproducible():
    first, again = synthetic_sample(7, 64, seed=3), synthetic_sample(7, 64, seed=3)
    assert first.image.tobytes() == again.image.tobytes() and first.mask.tobytes() == again.mask.tobytes()
    assert first.box == again.box
    assert synthetic_sample(7, 64, seed=4).image.tobytes() != first.image.tobytes()
    assert synthetic_sample(8, 64, seed=3).image.tobytes() != first.image.tobytes()
    assert first.image.shape == (64, 64, 3) and first.image.dtype == np.uint8


def test_synthetic_labels_mask_and_box_agree():
    for index in range(30):
        sample = synthetic_sample(index, 48, seed=0)
        labels = synthetic_labels(index, seed=0)
        assert (sample.shape, sample.colour, sample.large) == (labels.shape, labels.colour, labels.large)
        assert set(np.unique(sample.mask)) == {0, 1 + sample.shape}
        ys, xs = np.nonzero(sample.mask)
        assert sample.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_synthetic_labels_are_balanced():
    drawn = [synthetic_labels(index, seed=0) for index in range(900)]
    for values, count in ((Counter(d.shape for d in drawn), 3), (Counter(d.colour for d in drawn), 3)):
        assert len(values) == count and min(values.values()) > 900 / count * 0.8
    assert 0.4 < sum(d.large for d in drawn) / 900 < 0.6
    assert list(SYNTHETIC_FIELDS) == ["shape", "colour", "large"] and SYNTHETIC_FIELDS["shape"] == SHAPES


def test_synthetic_large_shapes_are_larger():
    areas = {0: [], 1: []}
    for index in range(200):
        sample = synthetic_sample(index, 64, seed=1)
        areas[sample.large].append(int(sample.mask.astype(bool).sum()))
    assert np.median(areas[1]) > 2 * np.median(areas[0])


def test_synthetic_tasks_read_their_fields():
    config = SyntheticDataset(count=40, size=32, seed=2, split=[0.5, 0.25, 0.25])
    tasks = [
        TaskLabels("shape", "classify", 3),
        TaskLabels("hue", "classify", ("blue", "red", "green"), label="colour"),
        TaskLabels("large", "binary", None),
        TaskLabels("round", "binary", None, label="shape", positive="circle"),
    ]
    splits = read_splits(config, tasks)
    assert {name: len(part) for name, part in splits.items()} == {"train": 20, "val": 10, "test": 10}
    train = splits["train"]
    for position, index in enumerate(train.images):
        labels = synthetic_labels(index, seed=2)
        assert train.targets["shape"][position] == labels.shape
        assert ("blue", "red", "green")[train.targets["hue"][position]] == COLOURS[labels.colour]
        assert train.targets["large"][position] == labels.large
        assert train.targets["round"][position] == (labels.shape == 0)


def test_synthetic_unknown_field_lists_the_fields():
    with pytest.raises(DataError) as caught:
        read_splits(SyntheticDataset(count=8), [TaskLabels("size", "binary", None)])
    assert "shape, colour, large" in caught.value.render()
    with pytest.raises(DataError, match="classes = 4"):
        read_splits(SyntheticDataset(count=8), [TaskLabels("colour", "classify", 4)])


# ------------------------------------------------------------------- folder


def test_folder_given_split(tmp_path):
    _class_folders(tmp_path / "train", {"cat": 3, "dog": 2})
    _class_folders(tmp_path / "valid", {"cat": 1, "dog": 1})
    _class_folders(tmp_path / "test", {"dog": 1})
    tasks = [TaskLabels("pet", "classify", ("dog", "cat")), TaskLabels("is_dog", "binary", None, positive="dog")]
    splits = read_splits(FolderDataset(root=str(tmp_path)), tasks)
    assert {name: len(part) for name, part in splits.items()} == {"train": 5, "val": 2, "test": 1}
    train = splits["train"]
    expected = [1 if "/cat/" in path else 0 for path in train.images]
    assert train.targets["pet"].tolist() == expected
    assert train.targets["is_dog"].tolist() == [1.0 - e for e in expected]
    assert train.targets["pet"].dtype == np.int64 and train.targets["is_dog"].dtype == np.float32


def test_folder_given_split_without_test_has_no_test_key(tmp_path):
    _class_folders(tmp_path / "train", {"a": 2, "b": 2})
    _class_folders(tmp_path / "val", {"a": 1, "b": 1})
    splits = read_splits(FolderDataset(root=str(tmp_path)), [TaskLabels("t", "classify", 2)])
    assert set(splits) == {"train", "val"}


def test_folder_ratio_split_is_deterministic_and_disjoint(tmp_path):
    _class_folders(tmp_path, {"a": 8, "b": 6, "c": 6})
    tasks = [TaskLabels("t", "classify", 3)]
    config = FolderDataset(root=str(tmp_path), split=[0.65, 0.10, 0.25], seed=1)
    splits = read_splits(config, tasks)
    assert {name: len(part) for name, part in splits.items()} == {"train": 13, "val": 2, "test": 5}
    parts = [set(part.images) for part in splits.values()]
    assert set.union(*parts) == {str(p) for p in tmp_path.rglob("*.png")}
    assert sum(len(p) for p in parts) == 20
    assert read_splits(config, tasks)["val"].images == splits["val"].images
    other = read_splits(config.model_copy(update={"seed": 2}), tasks)
    assert other["train"].images != splits["train"].images
    two = read_splits(config.model_copy(update={"split": [0.85, 0.15]}), tasks)
    assert set(two) == {"train", "val"}


def test_folder_class_mismatch_names_the_folders(tmp_path):
    _class_folders(tmp_path, {"angular_leaf_spot": 1, "bean_rust": 1, "healthy": 1})
    config = FolderDataset(root=str(tmp_path), split=[0.5, 0.5])
    with pytest.raises(DataError) as caught:
        read_splits(config, [TaskLabels("t", "classify", ("angular_leaf_spot", "rust", "healthy"))])
    text = caught.value.render()
    assert "'rust'" in text and "bean_rust" in text and "did you mean" in text
    with pytest.raises(DataError, match="does not list: healthy"):
        read_splits(config, [TaskLabels("t", "classify", ("angular_leaf_spot", "bean_rust"))])
    with pytest.raises(DataError, match="write classes = 3"):
        read_splits(config, [TaskLabels("t", "classify", 2)])


def test_folder_missing_root_and_split_folders(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_splits(FolderDataset(root=str(tmp_path / "nope")), [TaskLabels("t", "classify", 2)])
    _class_folders(tmp_path, {"a": 1, "b": 1})
    with pytest.raises(DataError) as caught:
        read_splits(FolderDataset(root=str(tmp_path)), [TaskLabels("t", "classify", 2)])
    assert "train/" in caught.value.render() and "split = 0.65/0.10/0.25" in caught.value.render()


def test_binary_without_positive_asks_for_one(tmp_path):
    _class_folders(tmp_path, {"a": 1, "b": 1})
    with pytest.raises(DataError, match="positive"):
        read_splits(FolderDataset(root=str(tmp_path), split=[0.5, 0.5]), [TaskLabels("t", "binary", None)])
    with pytest.raises(DataError, match="did you mean 'b'"):
        read_splits(
            FolderDataset(root=str(tmp_path), split=[0.5, 0.5]), [TaskLabels("t", "binary", None, positive="bb")]
        )


# ---------------------------------------------------------------- manifests


@pytest.fixture
def coco_like(tmp_path) -> Path:
    names = ["kitchen.png", "street.png", "room.png", "empty.png"]
    for name in names:
        _image(tmp_path / "images" / name)
    (tmp_path / "classes.txt").write_text("person\ncar\ndining table\ntable\nchair\n")
    (tmp_path / "labels.csv").write_text(
        "file_name,labels,scene\n"
        "kitchen.png,chair dining table person,indoor\n"
        "street.png,car person,outdoor\n"
        "room.png,table chair,indoor\n"
        "empty.png,,outdoor\n"
    )
    return tmp_path


def _csv(root: Path, **fields) -> CsvDataset:
    defaults = {"path": str(root / "labels.csv"), "images": str(root / "images"), "split": [0.5, 0.5]}
    return CsvDataset(**{**defaults, **fields})


def _all(splits) -> dict[str, dict[str, np.ndarray]]:
    """Targets keyed by image file name, over every split."""
    found: dict[str, dict[str, np.ndarray]] = {}
    for part in splits.values():
        for position, image in enumerate(part.images):
            found[Path(image).name] = {task: values[position] for task, values in part.targets.items()}
    return found


def test_csv_vocabulary_matches_multi_word_labels(coco_like):
    tasks = [
        TaskLabels("objects", "multilabel", ("person", "dining table", "table")),
        TaskLabels("dining", "binary", None, positive="dining table"),
        TaskLabels("scene", "classify", ("indoor", "outdoor"), label="scene"),
    ]
    targets = _all(read_splits(_csv(coco_like, vocabulary=str(coco_like / "classes.txt")), tasks))
    assert targets["kitchen.png"]["objects"].tolist() == [1, 1, 0]
    assert targets["room.png"]["objects"].tolist() == [0, 0, 1]
    assert targets["empty.png"]["objects"].tolist() == [0, 0, 0]
    assert [targets[n]["dining"] for n in ("kitchen.png", "street.png", "room.png")] == [1, 0, 0]
    assert targets["street.png"]["scene"] == 1 and targets["room.png"]["scene"] == 0


def test_csv_count_of_classes_uses_the_vocabulary_order(coco_like):
    splits = read_splits(_csv(coco_like, vocabulary=str(coco_like / "classes.txt")), [TaskLabels("o", "multilabel", 5)])
    assert _all(splits)["kitchen.png"]["o"].tolist() == [1, 0, 1, 0, 1]


def test_csv_without_vocabulary_splits_every_word(coco_like):
    splits = read_splits(_csv(coco_like), [TaskLabels("o", "multilabel", ("dining", "table"))])
    assert _all(splits)["kitchen.png"]["o"].tolist() == [1, 1]


def test_csv_label_outside_the_vocabulary(coco_like):
    (coco_like / "classes.txt").write_text("person\ncar\ntable\nchair\n")
    with pytest.raises(DataError) as caught:
        read_splits(_csv(coco_like, vocabulary=str(coco_like / "classes.txt")), [TaskLabels("o", "multilabel", 4)])
    assert "'dining'" in caught.value.render() and "kitchen.png" in caught.value.render()


def test_csv_classify_needs_one_label_per_row(coco_like):
    with pytest.raises(DataError, match="needs exactly one"):
        read_splits(_csv(coco_like, vocabulary=str(coco_like / "classes.txt")), [TaskLabels("o", "classify", 5)])


def test_csv_missing_column_and_files(coco_like):
    with pytest.raises(DataError, match="did you mean 'labels'"):
        read_splits(_csv(coco_like, label_column="label"), [TaskLabels("o", "multilabel", ("car",))])
    (coco_like / "images" / "room.png").unlink()
    with pytest.raises(DataError, match=r"room\.png"):
        read_splits(_csv(coco_like), [TaskLabels("o", "multilabel", ("car",))])
    with pytest.raises(DataError, match=r"nope\.csv"):
        read_splits(_csv(coco_like, path=str(coco_like / "nope.csv")), [TaskLabels("o", "multilabel", ("car",))])


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_manifest(coco_like, suffix):
    rows = [
        {"image": "kitchen.png", "tags": ["dining table", "person"], "scene": "indoor"},
        {"image": "street.png", "tags": ["person"], "scene": "outdoor"},
        {"image": "room.png", "tags": [], "scene": "indoor"},
        {"image": "empty.png", "tags": "car", "scene": "outdoor"},
    ]
    path = coco_like / f"labels{suffix}"
    path.write_text("\n".join(json.dumps(r) for r in rows) if suffix == ".jsonl" else json.dumps(rows))
    config = JsonDataset(path=str(path), images=str(coco_like / "images"), image_column="image", label_column="tags")
    tasks = [
        TaskLabels("objects", "multilabel", ("person", "dining table", "car")),
        TaskLabels("scene", "classify", ("indoor", "outdoor"), label="scene"),
    ]
    targets = _all(read_splits(config, tasks))
    assert targets["kitchen.png"]["objects"].tolist() == [1, 1, 0]
    assert targets["empty.png"]["objects"].tolist() == [0, 0, 1]
    assert targets["street.png"]["scene"] == 1


def test_json_must_be_a_list_of_objects(coco_like):
    (coco_like / "bad.json").write_text('{"file_name": "a.png"}')
    with pytest.raises(DataError, match="list of objects"):
        config = JsonDataset(path=str(coco_like / "bad.json"), images=str(coco_like))
        read_splits(config, [TaskLabels("o", "multilabel", 2)])


# ------------------------------------------------------------- the dataset


@pytest.fixture
def folder_splits(tmp_path):
    _class_folders(tmp_path / "train", {"a": 3, "b": 3})
    _class_folders(tmp_path / "val", {"a": 1, "b": 1})
    tasks = [TaskLabels("t", "classify", ("a", "b")), TaskLabels("is_b", "binary", None, positive="b"),
             TaskLabels("m", "multilabel", ("b",))]
    return read_splits(FolderDataset(root=str(tmp_path)), tasks), tasks


def test_items_have_the_documented_shapes(folder_splits):
    splits, tasks = folder_splits
    item = _dataset(splits["train"], tasks)[(1, 0)]
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
    assert item["targets"]["t"].dtype == torch.int64 and item["targets"]["t"].shape == ()
    assert item["targets"]["is_b"].dtype == torch.float32 and item["targets"]["is_b"].shape == ()
    assert item["targets"]["m"].dtype == torch.float32 and item["targets"]["m"].shape == (1,)
    assert item["index"] == 1


def test_augmentation_depends_only_on_the_item_seed(folder_splits):
    splits, tasks = folder_splits
    train = _dataset(splits["train"], tasks, train=True)
    first = train[(2, 11)]["image"]
    torch.manual_seed(123)  # the global RNG must not matter
    [train[(i, 5)] for i in range(4)]
    assert torch.equal(first, train[(2, 11)]["image"])
    assert not all(torch.equal(train[(2, 11)]["image"], train[(2, seed)]["image"]) for seed in (12, 13, 14))
    evaluate = _dataset(splits["train"], tasks, train=False)
    assert torch.equal(evaluate[(2, 11)]["image"], evaluate[(2, 12)]["image"])


def test_synthetic_items_depend_only_on_the_item_seed():
    config = SyntheticDataset(count=12, size=32, seed=0, split=[0.5, 0.5])
    tasks = [TaskLabels("shape", "classify", 3)]
    dataset = _dataset(read_splits(config, tasks)["train"], tasks)
    assert torch.equal(dataset[(3, 1)]["image"], dataset[(3, 1)]["image"])
    assert not torch.equal(dataset[(3, 1)]["image"], dataset[(3, 2)]["image"])


def test_targets_match_the_items(folder_splits):
    splits, tasks = folder_splits
    dataset = _dataset(splits["train"], tasks)
    for task in ("t", "is_b", "m"):
        stacked = torch.stack([dataset[(i, 0)]["targets"][task] for i in range(len(dataset))])
        assert torch.equal(dataset.targets(task), stacked)


def test_corrupt_image_errors_or_is_skipped(folder_splits, tmp_path):
    _splits, tasks = folder_splits
    bad = tmp_path / "train" / "a" / "x.jpg"
    bad.write_bytes(b"this is not a jpeg")
    examples = read_splits(FolderDataset(root=str(tmp_path)), tasks)["train"]
    position = examples.images.index(str(bad))
    with pytest.raises(DataError) as caught:
        _dataset(examples, tasks)[(position, 0)]
    assert "x.jpg" in caught.value.render() and "on_corrupt = skip" in caught.value.render()
    skipping = _dataset(examples, tasks, on_corrupt="skip")
    assert skipping[(position, 0)] is None
    batch = collate([skipping[(i, 0)] for i in range(len(skipping))])
    assert batch["skipped"] == 1 and batch["image"].shape == (len(skipping) - 1, 3, 16, 16)
    assert batch["targets"]["m"].shape == (len(skipping) - 1, 1) and position not in batch["index"].tolist()
    empty = collate([None, None])
    assert empty["skipped"] == 2 and empty["index"].numel() == 0 and empty["targets"] == {}


def test_normalization_reads_timm_configs():
    assert normalization("resnet18") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert normalization("test_resnet") == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert normalization("not_a_model") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_task_labels_from_a_spec():
    from mtdsl.spec.load import load_text

    spec = load_text(
        """
model demo
backbone trunk = timm("test_resnet")
dataset shapes = synthetic(count = 16)
dataset tags = json("tags.json", images = "images")
task shape: classify(shapes) { classes = 3 }
task hue: classify(shapes) { classes = [red, green, blue]; label = colour }
task round: binary(shapes) { label = shape; positive = "circle" }
task tagged: multilabel(tags) { classes = [a, b] }
"""
    )
    assert task_labels(spec, ["shape", "hue", "round", "tagged"]) == [
        TaskLabels("shape", "classify", 3),
        TaskLabels("hue", "classify", ("red", "green", "blue"), label="colour"),
        TaskLabels("round", "binary", None, label="shape", positive="circle"),
        TaskLabels("tagged", "multilabel", ("a", "b")),
    ]
    assert spec.datasets["tags"].kind == "json"


# ------------------------------------------------------------- real data


@pytest.mark.data
@requires_shared_data("beans")
def test_beans_given_split():
    tasks = [TaskLabels("health", "classify", ("angular_leaf_spot", "bean_rust", "healthy"))]
    splits = read_splits(FolderDataset(root=str(SHARED_DATA / "beans" / "images")), tasks)
    assert {name: len(part) for name, part in splits.items()} == {"train": 1034, "val": 133}
    dataset = _dataset(splits["val"], tasks, train=False)
    assert dataset[(0, 0)]["image"].shape == (3, 16, 16)
    assert set(dataset.targets("health").tolist()) == {0, 1, 2}


@pytest.mark.data
@requires_shared_data("coco128")
def test_coco128_csv_with_vocabulary():
    root = SHARED_DATA / "coco128"
    config = CsvDataset(
        path=str(root / "annotations" / "image_labels.csv"),
        images=str(root / "images" / "train2017"),
        vocabulary=str(root / "annotations" / "classes.txt"),
    )
    tasks = [TaskLabels("objects", "multilabel", 80), TaskLabels("dining", "binary", None, positive="dining table")]
    splits = read_splits(config, tasks)
    assert sum(len(part) for part in splits.values()) == 128
    targets = _all(splits)
    assert targets["000000000110.jpg"]["dining"] == 1
    names = (root / "annotations" / "classes.txt").read_text().split("\n")
    assert targets["000000000110.jpg"]["objects"][names.index("dining table")] == 1
    assert targets["000000000025.jpg"]["objects"].sum() == 1
