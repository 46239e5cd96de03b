"""One reader per dataset format: YOLO, Pascal VOC, COCO polygons and RLEs, manifest split columns.

Each format reads tiny files written here, and each malformed file is a
:class:`DataError` that names the file and line, what is wrong and the fix.
docs/adding_a_format.md's steps are kept true at the end.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from mtdsl.cli import main
from mtdsl.errors import DataError
from mtdsl.spec.data import DATASETS, CocoDataset, CsvDataset, JsonDataset, VocDataset, YoloDataset, formats_serving
from mtdsl.train.data.box_mask_targets import IGNORE_INDEX, read_mask
from mtdsl.train.data.datasets import ImageDataset, read_splits
from mtdsl.train.data.formats import READERS
from mtdsl.train.data.formats.coco_masks import CocoMask
from mtdsl.train.data.tasks import TaskLabels

DETECT = TaskLabels("objects", "detect", ("cat", "dog"))
STATS = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def _image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), "white").save(path)


def test_every_format_has_a_reader_and_says_what_it_serves():
    assert READERS.missing() == [] and set(READERS) == set(DATASETS.kinds())
    for kind in DATASETS.kinds():
        assert DATASETS.get(kind).serves, kind
    assert formats_serving("detect") == ["coco", "yolo", "voc", "synthetic"]
    assert formats_serving("segment") == ["coco", "yolo", "masks", "synthetic"]


# ---------------------------------------------------------------- YOLO


def _yolo(root: Path, labels: dict[str, str], names: object = ("cat", "dog")) -> Path:
    """``images/{train,val}/NAME.png`` (40x20) with ``labels/…/NAME.txt`` holding ``labels[NAME]``."""
    for index, (name, text) in enumerate(labels.items()):
        split = "val" if index == len(labels) - 1 else "train"
        _image(root / "images" / split / f"{name}.png", 40, 20)
        if text is not None:
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split / f"{name}.txt").write_text(text)
    data = root / "data.yaml"
    shown = json.dumps(list(names)) if isinstance(names, tuple) else names
    data.write_text(f"path: .\ntrain: images/train\nval: images/val\nnames: {shown}\n")
    return data


def test_yolo_boxes_in_pixels_polygons_and_images_without_labels(tmp_path):
    data = _yolo(tmp_path, {"a": "1 0.5 0.5 0.5 0.5\n\n0 0.25 0.5 0.1 0.2\n", "b": None,
                            "c": "0 0.1 0.1 0.3 0.1 0.3 0.6\n"})
    splits = read_splits(YoloDataset(data=str(data)), [DETECT])
    assert [len(splits[s]) for s in ("train", "val")] == [2, 1]
    first = splits["train"].targets["objects"][0]
    np.testing.assert_allclose(first.boxes, [[10, 5, 30, 15], [8, 8, 12, 12]], atol=1e-4)
    assert first.classes.tolist() == [1, 0]
    assert len(splits["train"].targets["objects"][1].boxes) == 0  # b has no label file: a negative
    dropped = read_splits(YoloDataset(data=str(data), keep_empty=False), [DETECT])  # the given split survives
    assert [Path(image).name for image in dropped["train"].images] == ["a.png"] and len(dropped["val"]) == 1
    polygon = splits["val"].targets["objects"][0]
    np.testing.assert_allclose(polygon.boxes, [[4, 2, 12, 12]], atol=1e-4)
    assert polygon.classes.tolist() == [0]
    # names as {id: name}, classes = N, and a ratio split over every listed image
    data = _yolo(tmp_path / "dict", {"a": "1 0.5 0.5 0.5 0.5\n", "b": ""}, names="{0: cat, 1: dog}")
    pooled = read_splits(YoloDataset(data=str(data), split=[0.5, 0.5]), [TaskLabels("o", "detect", 2)])
    assert sum(len(part) for part in pooled.values()) == 2


def test_yolo_polygons_paint_a_segment_tasks_mask(tmp_path):
    # 40x20 images: the dog's triangle covers the right half's top, the cat's square the left quarter
    data = _yolo(tmp_path, {"a": "0 0 0 0.25 0 0.25 1 0 1\n1 0.5 0 1 0 1 0.5\n", "b": None, "c": ""})
    task = TaskLabels("regions", "segment", ("background", "cat", "dog"))
    splits = read_splits(YoloDataset(data=str(data)), [task, DETECT])
    target = splits["train"].targets["regions"][0]
    classes = target.classes(read_mask(target.mask))
    assert classes.shape == (20, 40) and (classes[:, :10] == 1).all() and classes[1, 38] == 2 and classes[18, 38] == 0
    assert splits["train"].targets["objects"][0].boxes.tolist() == [[0, 0, 10, 20], [20, 0, 40, 10]]
    assert not read_mask(splits["train"].targets["regions"][1].mask).any()  # no label file: all background
    only_dog = read_splits(YoloDataset(data=str(data)), [TaskLabels("r", "segment", ("bg", "dog"))])["train"]
    painted = only_dog.targets["r"][0]
    assert painted.classes(read_mask(painted.mask))[5, 5] == 0  # the cat is not a class of this task
    boxes = _yolo(tmp_path / "boxes", {"a": "0 0.5 0.5 0.2 0.2\n", "b": ""})
    with pytest.raises(DataError, match=r"labels/train/a\.txt:1: a box, but a segment task paints polygons"):
        read_splits(YoloDataset(data=str(boxes)), [task])


def test_yolo_coordinates_are_fractions_of_the_upright_picture(tmp_path):
    """A phone's portrait JPEG is stored landscape with an EXIF orientation; its labels and masks are upright."""
    data = _yolo(tmp_path, {"a": "0 0 0 1 0 1 0.25 0 0.25\n", "b": ""})
    stored = tmp_path / "images" / "train" / "a.png"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40x20, viewed 20x40 (a quarter turn clockwise)
    Image.new("RGB", (40, 20), "white").save(stored.with_suffix(".jpg"), "JPEG", exif=exif)
    stored.unlink()
    task = TaskLabels("regions", "segment", ("background", "cat", "dog"))
    splits = read_splits(YoloDataset(data=str(data)), [task, DETECT])
    assert splits["train"].targets["objects"][0].boxes.tolist() == [[0, 0, 20, 10]]  # the top quarter, upright
    item = ImageDataset(splits["train"], [task, DETECT], image_size=(40, 40), train=False, augment=[], **STATS)[0]
    mask = item["targets"]["regions"]
    assert item["image"].shape == (3, 40, 40) and (mask[:10, :20] == 1).all() and (mask[10:40, :20] == 0).all()
    assert (mask[:, 20:] == IGNORE_INDEX).all()  # the letterbox pads the narrow upright picture on the right
    assert item["targets"]["objects"]["boxes"].tolist() == [[0, 0, 20, 10]]


@pytest.mark.parametrize(("line", "problem"), [
    ("2 0.5 0.5 0.1 0.1", "class 2 is not below the 2 names of data.yaml"),
    ("cat 0.5 0.5 0.1 0.1", "class 'cat' is not a class id"),
    ("0 0.5 half 0.1 0.1", "'half' is not a number"),
    ("0 0.5 0.5 0.1", "3 numbers after the class"),
    ("0 0.5 0.5 1.5 0.1", "a coordinate outside 0..1"),
])
def test_a_malformed_yolo_label_line_is_located(tmp_path, line, problem):
    data = _yolo(tmp_path, {"a": f"0 0.5 0.5 0.2 0.2\n{line}\n", "b": ""})
    with pytest.raises(DataError, match=problem) as error:
        read_splits(YoloDataset(data=str(data)), [DETECT])
    assert f"labels/train/a.txt:2: {problem}" in error.value.message
    assert "fix or delete line 2" in error.value.render()


def test_a_malformed_data_yaml_is_located(tmp_path):
    data = _yolo(tmp_path, {"a": "", "b": ""})
    data.write_text("train: images/train\nval: [images/val\nnames: [cat]\n")
    with pytest.raises(DataError, match=r"data.yaml:3:\d+ is not valid YAML"):
        read_splits(YoloDataset(data=str(data)), [DETECT])
    data.write_text("train: images/train\nval: images/val\n")
    with pytest.raises(DataError, match="has no 'names'") as error:
        read_splits(YoloDataset(data=str(data)), [DETECT])
    assert "names: [cat, dog]" in error.value.render()
    data.write_text("train: images/train\nval: images/missing\nnames: [cat, dog]\n")
    with pytest.raises(DataError, match=r"images/missing is neither a folder nor a \.txt file"):
        read_splits(YoloDataset(data=str(data)), [DETECT])


# ---------------------------------------------------------------- Pascal VOC


def _object(name: str, box: tuple[int, int, int, int], difficult: int = 0) -> str:
    x0, y0, x1, y1 = box
    return (f"  <object>\n    <name>{name}</name>\n    <difficult>{difficult}</difficult>\n    <bndbox>\n"
            f"      <xmin>{x0}</xmin>\n      <ymin>{y0}</ymin>\n      <xmax>{x1}</xmax>\n      <ymax>{y1}</ymax>\n"
            "    </bndbox>\n  </object>\n")


def _voc(root: Path, objects: dict[str, str], splits: dict[str, list[str]]) -> Path:
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for image_id, found in objects.items():
        _image(root / "JPEGImages" / f"{image_id}.jpg", 40, 20)
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation>\n  <filename>{image_id}.jpg</filename>\n"
            f"  <size><width>40</width><height>20</height><depth>3</depth></size>\n{found}</annotation>\n")
    for split, ids in splits.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def test_voc_boxes_are_one_based_and_difficult_objects_are_dropped_unless_kept(tmp_path):
    root = _voc(tmp_path, {"001": _object("dog", (1, 1, 10, 5)) + _object("cat", (5, 5, 20, 15), difficult=1),
                           "002": _object("cat", (2, 3, 40, 20))}, {"train": ["001"], "val": ["002"]})
    splits = read_splits(VocDataset(root=str(root)), [DETECT])
    first = splits["train"].targets["objects"][0]
    assert first.boxes.tolist() == [[0, 0, 10, 5]] and first.classes.tolist() == [1]
    assert splits["val"].targets["objects"][0].boxes.tolist() == [[1, 2, 40, 20]]
    kept = read_splits(VocDataset(root=str(root), difficult=True), [DETECT])["train"].targets["objects"][0]
    assert kept.classes.tolist() == [1, 0]
    # classes = N takes the object names found, sorted; a ratio split reads every annotation file
    assert len(read_splits(VocDataset(root=str(root), split=[0.5, 0.5]), [TaskLabels("o", "detect", 2)])["val"]) == 1


@pytest.mark.parametrize(("broken", "problem"), [
    ("<object><name>dog</name></object>", r"Annotations/001.xml:4: the object of line 4 has no <bndbox>"),
    ("<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>x</xmax><ymax>4</ymax></bndbox></object>",
     r"001.xml:4: the object of line 4 has <xmax>x</xmax>, which is not a number"),
    ("<object><name>dog</name><bndbox><xmin>9</xmin><ymin>1</ymin><xmax>2</xmax><ymax>4</ymax></bndbox></object>",
     r"001.xml:4: the object of line 4 has a box whose min is past its max"),
    ("<object><bndbox/></object>", r"001.xml:4: the object of line 4 has no <name>"),
    ("<object><name>dog</name>", r"001.xml:5:3: not well-formed XML \(mismatched tag\)"),
])
def test_a_malformed_voc_file_is_located(tmp_path, broken, problem):
    root = _voc(tmp_path, {"001": broken + "\n", "002": ""}, {"train": ["001"], "val": ["002"]})
    with pytest.raises(DataError, match=problem) as error:
        read_splits(VocDataset(root=str(root)), [DETECT])
    assert "hint:" in error.value.render()


def test_a_voc_split_list_naming_a_missing_file_is_located(tmp_path):
    root = _voc(tmp_path, {"001": "", "002": ""}, {"train": ["001", "003"], "val": ["002"]})
    with pytest.raises(DataError, match=r"ImageSets/Main/train.txt:2: image 003 has no .*003.xml"):
        read_splits(VocDataset(root=str(root)), [DETECT])


# ---------------------------------------------------------------- COCO polygons and RLEs


def _coco_segments(folder: Path, segmentations: list[tuple[int, object, int]], size=(8, 12)) -> CocoDataset:
    """One ``size`` (height, width) image with ``(category id, segmentation, iscrowd)`` annotations."""
    height, width = size
    _image(folder / "images" / "0.png", width, height)
    annotations = [{"id": i + 1, "image_id": 1, "category_id": cat, "bbox": [0, 0, 1, 1], "iscrowd": crowd,
                    "segmentation": seg} for i, (cat, seg, crowd) in enumerate(segmentations)]
    path = folder / "instances.json"
    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "0.png", "height": height, "width": width}],
        "annotations": annotations, "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}))
    return CocoDataset(annotations=str(path), images=str(folder / "images"), split=[0.0, 1.0])


def _rle(mask: np.ndarray, compressed: bool) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    flat = mask.T.reshape(-1).astype(int)  # column-major runs, starting with zeros
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {"size": list(mask.shape), "counts": np.diff(np.concatenate([[0], changes])).tolist()}


def test_coco_polygons_rles_and_crowds_paint_one_class_mask(tmp_path):
    dog = np.zeros((8, 12), bool)
    dog[5:8, 8:12] = True
    crowd = np.zeros((8, 12), bool)
    crowd[0:2, 10:12] = True
    config = _coco_segments(tmp_path, [
        (1, [[1, 1, 5, 1, 5, 5, 1, 5]], 0),   # cat: a polygon, pixels x 1..4, y 1..4
        (2, _rle(dog, compressed=True), 0),
        (2, _rle(crowd, compressed=False), 1),
    ])
    task = TaskLabels("regions", "segment", ("background", "cat", "dog"))
    target = read_splits(config, [task])["val"].targets["regions"][0]
    classes = target.classes(read_mask(target.mask))
    assert classes[2, 2] == 1 and classes[0, 0] == 0 and (classes[dog] == 2).all() and (classes[crowd] == 255).all()
    assert (classes == 1).sum() == 16
    # through the dataset, as training reads it: the mask follows the letterbox
    item = ImageDataset(read_splits(config, [task])["val"], [task], image_size=(12, 12), train=False, **STATS)[0]
    assert item["targets"]["regions"].shape == (12, 12) and (item["targets"]["regions"][8:] == IGNORE_INDEX).all()
    # classes = N: the background and every category; a task that lists only dog leaves the cat as background
    assert read_splits(config, [TaskLabels("r", "segment", 3)])["val"].targets["r"][0].mask.height == 8
    only_dog = read_splits(config, [TaskLabels("r", "segment", ("bg", "dog"))])["val"].targets["r"][0]
    assert only_dog.classes(read_mask(only_dog.mask))[2, 2] == 0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.booleans(), min_size=6 * 5, max_size=6 * 5), st.booleans())
def test_any_rle_paints_back_its_own_pixels(bits, compressed):
    mask = np.array(bits, dtype=bool).reshape(6, 5)
    painted = CocoMask("m", 6, 5, ((_rle(mask, compressed), 7),)).read()
    assert ((painted == 7) == mask).all() and ((painted == 0) == ~mask).all()


@pytest.mark.parametrize(("segmentation", "problem"), [
    (None, "has no segmentation"),
    ([[1, 1, 5, 1]], "of 4 numbers, which is not x, y pairs of at least 3 points"),
    ([[1, 1, 5, "x", 5, 5]], "which is not a list of finite numbers"),
    ({"size": [8, 12], "counts": [1, 2]}, "are not run lengths summing to 8x12 = 96 pixels"),
    ({"size": [4, 4], "counts": [16]}, "an RLE of image 1 is 4x4"),
])
def test_a_malformed_coco_segmentation_is_named(tmp_path, segmentation, problem):
    config = _coco_segments(tmp_path, [(1, segmentation, 0)])
    with pytest.raises(DataError, match=problem):
        read_splits(config, [TaskLabels("r", "segment", 3)])
    assert read_splits(config, [TaskLabels("o", "detect", 2)])  # a detect task does not read the segmentation


def test_coco_segment_classes_must_fit_the_categories(tmp_path):
    config = _coco_segments(tmp_path, [(1, [[1, 1, 5, 1, 5, 5]], 0)])
    with pytest.raises(DataError, match="has classes = 2, but the file has 2 categories, so 3 classes"):
        read_splits(config, [TaskLabels("r", "segment", 2)])
    with pytest.raises(DataError, match="'cat' as class 0, the background"):
        read_splits(config, [TaskLabels("r", "segment", ("cat", "dog"))])
    with pytest.raises(DataError, match="lists class 'dgo', which is not a category") as error:
        read_splits(config, [TaskLabels("r", "segment", ("background", "dgo"))])
    assert "dog" in error.value.render()


# ---------------------------------------------------------------- CSV and JSON split columns


def _manifest_images(folder: Path, count: int) -> None:
    for index in range(count):
        _image(folder / f"{index}.png", 8, 8)


def test_a_manifest_split_column_gives_the_split(tmp_path):
    _manifest_images(tmp_path / "img", 5)
    rows = ["train", "val", "Valid", "test", "train"]
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("file_name,labels,split\n" + "".join(f"{i}.png,{'cat' if i % 2 else 'dog'},{s}\n"
                                                             for i, s in enumerate(rows)))
    task = TaskLabels("pet", "classify", ("cat", "dog"))
    splits = read_splits(CsvDataset(path=str(csv_path), images=str(tmp_path / "img"), split="given"), [task])
    assert {name: [Path(i).name for i in part.images] for name, part in splits.items()} == {
        "train": ["0.png", "4.png"], "val": ["1.png", "2.png"], "test": ["3.png"]}
    json_path = tmp_path / "labels.jsonl"
    json_path.write_text("".join(json.dumps({"file_name": f"{i}.png", "labels": "cat", "part": s}) + "\n"
                                 for i, s in enumerate(rows)))
    splits = read_splits(JsonDataset(path=str(json_path), images=str(tmp_path / "img"), split="given",
                                     split_column="part"), [TaskLabels("pet", "classify", ("cat",))])
    assert [len(splits[name]) for name in ("train", "val", "test")] == [2, 2, 1]


def test_a_bad_split_cell_is_located_at_its_line(tmp_path):
    _manifest_images(tmp_path / "img", 3)
    path = tmp_path / "labels.csv"
    path.write_text('file_name,labels,split\n0.png,"cat\nmore",train\n1.png,cat,val\n2.png,cat,trian\n')
    task = TaskLabels("pet", "multilabel", ("cat",))
    with pytest.raises(DataError, match=r"labels.csv:5: split is 'trian', which names no split") as error:
        read_splits(CsvDataset(path=str(path), images=str(tmp_path / "img"), split="given"), [task])
    assert "train" in error.value.render()
    path.write_text("file_name,labels\n0.png,cat\n")
    with pytest.raises(DataError, match="has no column 'split'"):
        read_splits(CsvDataset(path=str(path), images=str(tmp_path / "img"), split="given"), [task])
    path.write_text("file_name,labels,split\n0.png,cat,train\n1.png,cat,train\n")
    with pytest.raises(DataError, match=r"no row of .* has split val"):
        read_splits(CsvDataset(path=str(path), images=str(tmp_path / "img"), split="given"), [task])


# ---------------------------------------------------------------- check and check --data

SPEC = """model boxes
input 3x64x64
backbone trunk = timm("test_efficientnet", pretrained = none)
neck pyramid = bifpn(trunk, channels = 16, repeats = 1, max_level = 5)
dataset things = {dataset}
task objects: {kind}(things) {{
    classes = {classes}
}}
train {{ batch_size = 2 }}
"""


def test_check_data_locates_a_malformed_yolo_label_file(tmp_path, capsys):
    data = _yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n", "b": "0 0.5 0.5 0.2\n"})
    spec = tmp_path / "boxes.mtl"
    spec.write_text(SPEC.format(dataset=f'yolo("{data}")', kind="detect", classes="[cat, dog]"))
    assert main(["check", str(spec)]) == 0
    capsys.readouterr()
    assert main(["check", "--data", "--json", str(spec)]) == 2
    [record] = json.loads(capsys.readouterr().out)
    assert (record["line"], record["stage"]) == (5, "data error")
    assert "labels/val/b.txt:1: 3 numbers after the class" in record["message"]


def test_check_data_reads_a_voc_dataset(tmp_path, capsys):
    root = _voc(tmp_path, {"001": _object("dog", (1, 1, 10, 5)), "002": _object("cat", (2, 3, 40, 20)),
                           "003": _object("cat", (1, 1, 4, 4))}, {"train": ["001", "003"], "val": ["002"]})
    spec = tmp_path / "boxes.mtl"
    spec.write_text(SPEC.format(dataset=f'voc("{root}")', kind="detect", classes="[cat, dog]"))
    assert main(["check", "--data", str(spec)]) == 0
    assert "things → objects: 2 train · 1 val" in " ".join(capsys.readouterr().out.split())


def test_check_refuses_a_format_that_cannot_serve_the_task_kind(tmp_path, capsys):
    spec = tmp_path / "boxes.mtl"
    spec.write_text(SPEC.format(dataset='voc("VOC2007")', kind="segment", classes="3"))
    assert main(["check", "--json", str(spec)]) == 2
    [record] = json.loads(capsys.readouterr().out)
    assert (record["line"], record["col"]) == (6, 23)
    assert "voc dataset 'things' holds boxes, so segment task 'objects' cannot learn from it" in record["message"]
    assert "coco, yolo, masks or synthetic" in record["expected"]


# ---------------------------------------------------------------- docs/adding_a_format.md

ROOT = Path(__file__).resolve().parents[1]


def _formats_table() -> dict[str, set[str]]:
    """docs/formats.md's table: each format → the task kinds its row says it serves."""
    from mtdsl.kinds import TASK_KINDS

    page = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8").split("\n## ", 1)[0]
    served = {}
    for row in (line for line in page.splitlines() if line.startswith("| `")):
        names, _holds, serves = (cell.strip() for cell in row.strip("|").split("|"))
        kinds = set(TASK_KINDS) if serves.startswith("all ") else set(re.findall(r"`(\w+)`", serves))
        served.update({name: kinds for name in re.findall(r"`(\w+)`", names)})
    return served


def test_the_adding_a_format_page_stays_true():
    """docs/adding_a_format.md's steps name what the code has: its registries, classes and files, where each
    format's reader lives, and what formats.md's table says each format serves."""
    import mtdsl.train.data.formats as formats
    from mtdsl.kinds.registry import Targets, TaskKind
    from mtdsl.spec.data import BoxesDataset, DatasetConfig, unserved
    from mtdsl.train.data.box_mask_targets import BoxTarget, MaskTarget
    from mtdsl.train.data.point_targets import PointTarget
    from mtdsl.train.data.sources import Table, describe

    page = (ROOT / "docs" / "adding_a_format.md").read_text(encoding="utf-8")
    steps = page.split("## The steps", 1)[1].split("\n## ", 1)[0]
    named = {"DATASETS": DATASETS, "READERS": READERS, "DatasetConfig": DatasetConfig, "BoxesDataset": BoxesDataset,
             "Table": Table, "BoxTarget": BoxTarget, "MaskTarget": MaskTarget, "PointTarget": PointTarget,
             "DataError": DataError, "TaskKind": TaskKind}
    assert READERS.configs is DATASETS and issubclass(BoxesDataset, DatasetConfig)
    assert {name for name in re.findall(r"`([A-Z]\w*)", steps)} == set(named)  # every code name it gives, and no other
    for owner, attribute in re.findall(r"`([A-Z]\w*)\.(\w+)`", steps):
        assert attribute in getattr(named[owner], "__dataclass_fields__", {}) or hasattr(named[owner], attribute), \
            f"{owner}.{attribute}"
    assert "`describe(config)`" in steps and callable(describe) and "(`unserved`)" in steps and callable(unserved)
    for variable in ("carries", "holds", "positional", "serves"):
        assert f"`{variable}`" in steps and hasattr(DatasetConfig, variable), variable
    assert all(f"`{target}`" in steps for target in get_args(Targets)) and len(get_args(Targets)) == 4

    for path in re.findall(r"`([\w/]+\.(?:py|md))`", steps):
        if "NAME" not in path:
            assert any((base / path).is_file() for base in (ROOT, ROOT / "src" / "mtdsl",
                                                            ROOT / "src" / "mtdsl" / "train" / "data")), path

    init = Path(formats.__file__).read_text(encoding="utf-8")
    imported = set(re.search(r"^from mtdsl\.train\.data\.formats import (.+)$", init, re.M).group(1).split(", "))
    for name in DATASETS.kinds():
        package, _, module = READERS[name].__module__.rpartition(".")
        assert package == formats.__name__, name
        assert module == name or f"`formats/{module}.py`" in steps, f"{name} is read in {module}.py"
        assert module in imported, f"formats/__init__.py does not import {module}"
        assert any(f":mod:`.{module}`" in line and name in re.split(r"[,\s]+", line.split(":mod:")[0])
                   for line in (formats.__doc__ or "").splitlines()), f"{name} has no row in formats/__init__.py"
    assert _formats_table() == {name: set(DATASETS.get(name).serves) for name in DATASETS.kinds()}
