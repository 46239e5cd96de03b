"""Detect and segment targets in the shared data path: read_splits, ImageDataset, collate and to_device."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, requires_shared_data
from PIL import Image

from mtdsl.errors import DataError
from mtdsl.spec.data import CocoDataset, MasksDataset, SyntheticDataset
from mtdsl.train.data.box_mask_targets import IGNORE_INDEX, BoxTarget, MaskTarget
from mtdsl.train.data.datasets import ImageDataset, collate, join_examples, read_splits
from mtdsl.train.data.letterbox import Letterbox
from mtdsl.train.data.loaders import to_device
from mtdsl.train.data.synthetic import SHAPES, synthetic_labels
from mtdsl.train.data.tasks import TaskLabels, task_labels
from mtdsl.train.data.transforms import ImageTransform

STATS = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
SHAPE = TaskLabels("shape", "classify", 3)
BOX = TaskLabels("box", "detect", SHAPES)
MASK = TaskLabels("mask", "segment", ("background", *SHAPES))


def _dataset(examples, tasks, size: int, train: bool = True, **kwargs) -> ImageDataset:
    return ImageDataset(examples, tasks, image_size=(size, size), train=train, **STATS, **kwargs)


def _bounds(where: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(where)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


@pytest.fixture(scope="module")
def shapes():
    config = SyntheticDataset(count=24, size=48, seed=0, split=[0.75, 0.25])
    return read_splits(config, [SHAPE, BOX, MASK])


# ---------------------------------------------------------------- synthetic: one stream, three kinds


def test_synthetic_examples_hold_per_example_targets(shapes):
    train = shapes["train"]
    assert len(train) == 18 and train.targets["box"].dtype == object and train.targets["shape"].dtype == np.int64
    first = train.targets["box"][0]
    assert isinstance(first, BoxTarget) and first.boxes.shape == (1, 4) and first.annotated.tolist() == [True] * 3
    assert isinstance(train.targets["mask"][0], MaskTarget) and train.targets["mask"][0].mask == train.images[0]
    assert train.subset([2, 0]).targets["box"][1] is first


def test_boxes_masks_and_labels_agree_on_each_item(shapes):
    dataset = _dataset(shapes["train"], [SHAPE, BOX, MASK], size=32)
    assert isinstance(dataset.transform, Letterbox)
    for index in range(len(dataset)):
        item = dataset[(index, 3)]
        targets = item["targets"]
        shape = synthetic_labels(shapes["train"].images[index], seed=0).shape
        assert list(targets) == ["shape", "box", "mask"] and int(targets["shape"]) == shape
        boxes, mask = targets["box"]["boxes"], targets["mask"]
        assert targets["box"]["classes"].tolist() == [shape] and targets["box"]["annotated"].all()
        assert mask.shape == (32, 32) and mask.dtype == torch.int64
        assert (set(mask.unique().tolist()) <= {0, 1, 2, 3, IGNORE_INDEX}
                and set(mask.unique().tolist()) >= {0, 1 + shape})
        x0, y0, x1, y1 = boxes[0].tolist()
        assert 0 <= x0 < x1 <= 32 and 0 <= y0 < y1 <= 32
        # 48 → 32 pixels: the box and the resized mask agree to about a pixel.
        assert np.allclose(_bounds(mask.numpy() == 1 + shape), [x0, y0, x1, y1], atol=1.5)
        assert (mask[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))] == 1 + shape).float().mean() > 0.4


def test_a_flip_mirrors_the_box_and_the_mask_together(shapes):
    # 48 → 48 pixels: no resize, so the geometry is exact.
    train = _dataset(shapes["train"], [BOX, MASK], size=48)
    plain = _dataset(shapes["train"], [BOX, MASK], size=48, train=False)[5]["targets"]
    box, mask = plain["box"]["boxes"][0].tolist(), plain["mask"]
    assert _bounds(mask.numpy() > 0) == box
    seen = set()
    for seed in range(12):
        targets = train[(5, seed)]["targets"]
        flipped = not torch.equal(targets["mask"], mask)
        seen.add(flipped)
        if flipped:
            assert torch.equal(targets["mask"], mask.flip(1))
            assert targets["box"]["boxes"][0].tolist() == [48 - box[2], box[1], 48 - box[0], box[3]]
        else:
            assert targets["box"]["boxes"][0].tolist() == box
    assert seen == {False, True}


def test_collate_and_to_device_carry_every_kind(shapes):
    dataset = _dataset(shapes["train"], [SHAPE, BOX, MASK], size=32)
    batch = collate([dataset[(0, 1)], None, dataset[(1, 1)], dataset[(2, 1)]])
    targets = batch["targets"]
    assert batch["image"].shape == (3, 3, 32, 32) and batch["skipped"] == 1 and batch["index"].tolist() == [0, 1, 2]
    assert targets["shape"].shape == (3,) and targets["shape"].dtype == torch.int64
    assert len(targets["box"]["boxes"]) == 3 and targets["box"]["boxes"][0].dtype == torch.float32
    assert targets["box"]["classes"][0].dtype == torch.int64 and targets["box"]["annotated"].shape == (3, 3)
    assert targets["box"]["annotated"].dtype == torch.bool
    assert targets["mask"].shape == (3, 32, 32) and targets["mask"].dtype == torch.int64
    moved = to_device(batch, torch.device("cpu"))
    assert torch.equal(moved["targets"]["box"]["boxes"][1], targets["box"]["boxes"][1])
    assert torch.equal(moved["targets"]["mask"], targets["mask"]) and moved["skipped"] == 1
    assert collate([None, None])["targets"] == {}


def test_image_label_streams_keep_the_crop_transform(shapes):
    dataset = _dataset(shapes["train"], [SHAPE], size=32)
    assert isinstance(dataset.transform, ImageTransform) and dataset.targets("shape").shape == (18,)
    mixed = _dataset(shapes["train"], [SHAPE, BOX], size=32)
    assert torch.equal(mixed.targets("shape"), dataset.targets("shape"))
    with pytest.raises(KeyError, match="detect task"):
        mixed.targets("box")
    with pytest.raises(ValueError, match="square"):
        ImageDataset(shapes["train"], [SHAPE, MASK], image_size=(32, 48), train=False, **STATS)


def test_synthetic_dense_classes_must_be_the_shapes():
    config = SyntheticDataset(count=4, size=32)
    with pytest.raises(DataError, match="detect task 'box' has classes = \\[circle, square\\]") as error:
        read_splits(config, [TaskLabels("box", "detect", ("circle", "square"))])
    assert "classes = [circle, square, triangle]" in error.value.render()
    with pytest.raises(DataError, match="segment task 'mask' has classes = 3") as error:
        read_splits(config, [TaskLabels("mask", "segment", 3)])
    assert "classes = [background, circle, square, triangle]" in error.value.render()
    assert len(read_splits(config, [TaskLabels("mask", "segment", 4), TaskLabels("box", "detect", 3)])["train"]) == 3


def test_task_labels_reads_detect_and_segment_tasks():
    from mtdsl.spec.load import load_text

    spec = load_text(
        """model m
input 3x64x64
backbone b = timm("test_resnet")
neck p = bifpn(b)
dataset d = synthetic(count = 32)
task box: detect(d) { classes = [circle, square, triangle]; tap = p }
task mask: segment(d) { classes = 4; tap = p }
""",
        "dense.mtl",
    )
    assert task_labels(spec) == [TaskLabels("box", "detect", SHAPES), TaskLabels("mask", "segment", 4)]


# ---------------------------------------------------------------- coco


def _write_coco(folder: Path, categories: list[tuple[int, str]], boxes: list[list[tuple[int, list[float]]]]) -> Path:
    """One 40x30 image per entry of ``boxes`` (its ``(category id, [x, y, w, h])`` pairs)."""
    (folder / "images").mkdir(parents=True)
    images, annotations = [], []
    for index, found in enumerate(boxes):
        Image.new("RGB", (40, 30), "white").save(folder / "images" / f"{index}.png")
        images.append({"id": index + 1, "file_name": f"{index}.png", "width": 40, "height": 30})
        for category, bbox in found:
            annotations.append({
                "id": len(annotations) + 1, "image_id": index + 1, "category_id": category, "bbox": bbox,
                "area": bbox[2] * bbox[3], "iscrowd": 0,
            })
    path = folder / "instances.json"
    categories_json = [{"id": i, "name": name} for i, name in categories]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories_json}))
    return path


def _coco(folder: Path, path: Path, **fields) -> CocoDataset:
    return CocoDataset(annotations=str(path), images=str(folder / "images"), **fields)


def test_two_coco_datasets_annotate_different_classes_of_one_task(tmp_path):
    pets = _write_coco(tmp_path / "pets", [(1, "cat"), (2, "dog")], [[(1, [2, 2, 10, 10])], [(2, [5, 5, 20, 10])]])
    people = _write_coco(
        tmp_path / "people", [(1, "person"), (3, "car")], [[(1, [0, 0, 8, 20]), (3, [10, 10, 8, 8])], []]
    )
    task = TaskLabels("objects", "detect", ("cat", "dog", "person"))
    split = [0.5, 0.5]
    first = read_splits(_coco(tmp_path / "pets", pets, classes=["cat", "dog"], split=split), [task])["train"]
    second = read_splits(_coco(tmp_path / "people", people, classes=["person"], split=split, seed=1), [task])["train"]
    both = join_examples([first, second])
    assert len(both) == 2
    batch = collate([_dataset(both, [task], size=40, train=False)[i] for i in range(2)])
    assert batch["targets"]["objects"]["annotated"].tolist() == [[True, True, False], [False, False, True]]
    person_image = second.images[0].endswith("0.png")
    assert batch["targets"]["objects"]["classes"][1].tolist() == ([2] if person_image else [])  # cars are dropped

    with pytest.raises(DataError, match="task 'objects' lists class 'person', which is not a category") as error:
        read_splits(_coco(tmp_path / "pets", pets), [task])
    assert "classes = [...] on the dataset" in error.value.render()
    with pytest.raises(DataError, match="the dataset's classes list 'person', which task 'dogs' does not have"):
        read_splits(_coco(tmp_path / "people", people, classes=["person"]), [TaskLabels("dogs", "detect", ("dog",))])


def test_coco_serves_detect_and_segment_tasks_only(tmp_path):
    path = _write_coco(tmp_path, [(1, "cat")], [[(1, [2, 2, 10, 10])], []])
    with pytest.raises(DataError, match="holds boxes, instance masks and keypoints, so classify task 'c'") as error:
        read_splits(_coco(tmp_path, path), [TaskLabels("c", "classify", ("cat",))])
    assert "image_labels.csv" in error.value.render()
    with pytest.raises(DataError, match=r"annotation 1 \(image 1\) has no segmentation"):
        read_splits(_coco(tmp_path, path), [TaskLabels("s", "segment", 2)])
    with pytest.raises(DataError, match="has 1 categories") as error:
        read_splits(_coco(tmp_path, path), [TaskLabels("d", "detect", 2)])
    assert "write classes = 1" in error.value.render()
    assert len(read_splits(_coco(tmp_path, path, keep_empty=False, split=[0.0, 1.0]), [TaskLabels("d", "detect", 1)])
               ["val"]) == 1


@pytest.mark.data
@requires_shared_data("coco128")
def test_coco128_boxes_through_read_splits():
    root = SHARED_DATA / "coco128"
    config = CocoDataset(
        annotations=str(root / "annotations" / "instances_train2017.json"), images=str(root / "images" / "train2017")
    )
    splits = read_splits(config, [TaskLabels("det", "detect", 80)])
    every = [target for part in splits.values() for target in part.targets["det"]]
    assert sum(len(t.boxes) for t in splits["train"].targets["det"]) + sum(
        len(t.boxes) for t in splits["val"].targets["det"]) == 929
    assert len(every) == 128 and sum(len(t.boxes) == 0 for t in every) == 2

    data = json.loads(Path(config.annotations).read_text())
    ids = {c["name"]: c["id"] for c in data["categories"]}
    people = sum(a["category_id"] == ids["person"] for a in data["annotations"])
    dogs = sum(a["category_id"] == ids["dog"] for a in data["annotations"])
    picked = read_splits(config, [TaskLabels("det", "detect", ("dog", "person"))])
    counts = np.bincount(np.concatenate([t.classes for p in picked.values() for t in p.targets["det"]]), minlength=2)
    assert counts.tolist() == [dogs, people]

    with pytest.raises(DataError, match="class 'persn'") as error:
        read_splits(config, [TaskLabels("det", "detect", ("persn", "dog"))])
    assert "did you mean 'person'" in error.value.render()
    first = next(i for i, t in enumerate(picked["train"].targets["det"]) if len(t.boxes))
    item = _dataset(picked["train"], [TaskLabels("det", "detect", ("dog", "person"))], size=96)[(first, 0)]
    boxes = item["targets"]["det"]["boxes"]
    assert item["image"].shape == (3, 96, 96) and len(boxes) and 0 <= float(boxes.min()) <= float(boxes.max()) <= 96


@pytest.mark.data
@requires_shared_data("oxford-pets-3class")
def test_pets_head_boxes_through_read_splits():
    root = SHARED_DATA / "oxford-pets-3class"
    config = CocoDataset(
        annotations=str(root / "annotations" / "instances_heads.json"), images=str(root / "images"), keep_empty=False
    )
    splits = read_splits(config, [TaskLabels("head", "detect", ("cat", "dog"))])
    assert {name: len(part) for name, part in splits.items()} == {"train": 237, "val": 59}
    assert all(len(t.boxes) >= 1 for part in splits.values() for t in part.targets["head"])
    kept = read_splits(config.model_copy(update={"keep_empty": True}), [TaskLabels("h", "detect", 2)])
    assert len(kept["val"]) == 120
    with pytest.raises(DataError, match="class 'dgo'") as error:
        read_splits(config, [TaskLabels("head", "detect", ("cat", "dgo"))])
    assert "did you mean 'dog'" in error.value.render()


# ---------------------------------------------------------------- masks


def _write_masks(root: Path, values: np.ndarray, names: tuple[str, ...] = ("a", "b", "c")) -> None:
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (values.shape[1], values.shape[0]), "white").save(root / "images" / f"{name}.jpg")
        Image.fromarray(values.astype(np.uint8)).save(root / "masks" / f"{name}.png")


def _masks(root: Path, **fields) -> MasksDataset:
    return MasksDataset(images=str(root / "images"), masks=str(root / "masks"), split=[0.0, 1.0], **fields)


def test_masks_class_map_ignore_and_unexpected_values(tmp_path):
    trimap = np.array([[1, 2, 3, 3, 2, 2, 2, 2]] * 6)  # 1 pet, 2 background, 3 boundary
    _write_masks(tmp_path, trimap)
    task = TaskLabels("pet", "segment", ("background", "pet"))
    config = _masks(tmp_path, class_map=[2, 1], ignore=[3])
    val = read_splits(config, [task])["val"]
    mask = _dataset(val, [task], size=8, train=False)[0]["targets"]["pet"]
    assert mask[0].tolist() == [1, 0, 255, 255, 0, 0, 0, 0] and (mask[6:] == IGNORE_INDEX).all()

    unlisted = read_splits(_masks(tmp_path, class_map=[2, 1]), [task])["val"]
    with pytest.raises(DataError, match="has value\\(s\\) 3, which are neither") as error:
        _dataset(unlisted, [task], size=8, train=False)[0]
    assert "ignore = [...]" in error.value.render()

    with pytest.raises(DataError, match="segment task 'pet' has 3 classes, but the dataset's class_map gives 2"):
        read_splits(config, [TaskLabels("pet", "segment", 3)])
    with pytest.raises(DataError, match="holds class masks, so classify task"):
        read_splits(config, [TaskLabels("c", "classify", 2)])


def test_masks_unreadable_and_mismatched_files(tmp_path):
    _write_masks(tmp_path, np.zeros((6, 8)))
    task = TaskLabels("s", "segment", 2)
    val = read_splits(_masks(tmp_path, classes=["x", "y"]), [task])["val"]
    (tmp_path / "masks" / "b.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((5, 8), dtype=np.uint8)).save(tmp_path / "masks" / "c.png")
    with pytest.raises(DataError, match=r"cannot read the image .*b\.png"):
        _dataset(val, [task], size=8)[1]
    assert _dataset(val, [task], size=8, on_corrupt="skip")[1] is None
    with pytest.raises(DataError, match=r"the mask .*c\.png is 8x5, its image .*c\.jpg 8x6"):
        _dataset(val, [task], size=8)[2]


def test_masks_classes_must_fit_the_task(tmp_path):
    _write_masks(tmp_path, np.zeros((6, 8)))
    (tmp_path / "classes.txt").write_text("0 sky\n1 road\n2 void\n")
    config = _masks(tmp_path, classes=str(tmp_path / "classes.txt"), ignore=[2])
    assert len(read_splits(config, [TaskLabels("s", "segment", ("sky", "road"))])["val"]) == 3
    with pytest.raises(DataError, match="segment task 's' has classes = 3, but the dataset's 2 classes are sky, road") \
            as error:
        read_splits(config, [TaskLabels("s", "segment", 3)])
    assert "write classes = 2" in error.value.render()
    with pytest.raises(DataError, match="neither the dataset nor segment task 's' names the classes"):
        read_splits(_masks(tmp_path), [TaskLabels("s", "segment", None)])
    (tmp_path / "images" / "train").mkdir()
    with pytest.raises(DataError, match="has a train/ folder") as error:
        read_splits(_masks(tmp_path), [TaskLabels("s", "segment", 2)])
    assert "split = given" in error.value.render()


@pytest.mark.data
@requires_shared_data("camvid")
def test_camvid_given_split():
    root = SHARED_DATA / "camvid"
    config = MasksDataset(
        images=str(root / "images"), masks=str(root / "masks"), classes=str(root / "classes.txt"), ignore=[11]
    )
    task = TaskLabels("road", "segment", 11)
    splits = read_splits(config, [task])
    assert {name: len(part) for name, part in splits.items()} == {"train": 367, "val": 101, "test": 233}
    assert splits["val"].images[0].replace(".jpg", ".png").replace("images", "masks") == \
        splits["val"].targets["road"][0].mask
    mask = _dataset(splits["val"], [task], size=64, train=False)[0]["targets"]["road"]
    assert set(mask.unique().tolist()) <= set(range(11)) | {IGNORE_INDEX} and (mask[48:] == IGNORE_INDEX).all()
    with pytest.raises(DataError, match="has classes = 12, but the dataset's 11 classes are Sky, Building"):
        read_splits(config, [TaskLabels("road", "segment", 12)])
