"""A malformed dataset file is a DataError naming the file, the entry and the fix, when it is read.

Never a traceback, and never accepted now to fail (or train on NaN) later.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from mtdsl.errors import DataError
from mtdsl.spec.data import CocoDataset, CsvDataset, JsonDataset, MasksDataset
from mtdsl.train.data.datasets import read_splits
from mtdsl.train.data.formats.coco import read_coco
from mtdsl.train.data.tasks import TaskLabels

# ---------------------------------------------------------------- COCO entries


def _coco() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 5], "iscrowd": 0},
            {"id": 11, "image_id": 2, "category_id": 2, "bbox": [3, 3, 6, 6], "iscrowd": 0},
        ],
    }


def _annotation(**change) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        data["annotations"][1].update(change)
        data["annotations"][1] = {key: value for key, value in data["annotations"][1].items() if value is not _DROP}

    return edit


def _image(**change) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        data["images"][1] = {key: value for key, value in {**data["images"][1], **change}.items() if value is not _DROP}

    return edit


_DROP = object()

#: (what is broken, how, what the message must say). Annotation 11 is of image 2.
BROKEN_COCO = [
    ("bbox too short", _annotation(bbox=[3, 3, 6]), "annotation 11 (image 2) has bbox [3, 3, 6]"),
    ("bbox too long", _annotation(bbox=[3, 3, 6, 6, 1]), "annotation 11 (image 2) has bbox [3, 3, 6, 6, 1]"),
    ("bbox missing", _annotation(bbox=_DROP), "annotation 11 (image 2) has no bbox"),
    ("bbox a string", _annotation(bbox="3 3 6 6"), "annotation 11 (image 2) has bbox '3 3 6 6'"),
    ("bbox null", _annotation(bbox=None), "annotation 11 (image 2) has bbox None"),
    ("bbox of strings", _annotation(bbox=[3, "3", 6, 6]), "has bbox [3, '3', 6, 6]"),
    ("bbox of booleans", _annotation(bbox=[3, True, 6, 6]), "has bbox [3, True, 6, 6]"),
    ("bbox with NaN", _annotation(bbox=[3, math.nan, 6, 6]), "bbox [3, nan, 6, 6], which is not finite"),
    ("bbox with inf", _annotation(bbox=[3, 3, math.inf, 6]), "bbox [3, 3, inf, 6], which is not finite"),
    ("bbox with -inf", _annotation(bbox=[-math.inf, 3, 6, 6]), "which is not finite"),
    ("bbox negative size", _annotation(bbox=[3, 3, -6, 6]), "whose width or height is negative"),
    ("category_id a string", _annotation(category_id="2"), "annotation 11 (image 2) has category_id '2'"),
    ("category_id missing", _annotation(category_id=_DROP), "annotation 11 (image 2) has no category_id"),
    ("category_id unknown", _annotation(category_id=7), "has category_id 7, which is not a category id"),
    ("image_id unknown", _annotation(image_id=42), "annotation 11 is of image_id 42, which is not an image"),
    ("image_id missing", _annotation(image_id=_DROP), "annotation 11 has no image_id"),
    ("image_id a list", _annotation(image_id=[2]), "annotation 11 is of image_id [2], which is not an image"),
    ("iscrowd a string", _annotation(iscrowd="no"), "annotation 11 (image 2) has iscrowd 'no', which is neither"),
    ("annotation not an object", lambda d: d["annotations"].append([1, 2]), "entry 2 of the annotations is [1, 2]"),
    ("annotations not a list", lambda d: d.update(annotations={"10": {}}), "'annotations' is dict"),
    ("file_name missing", _image(file_name=_DROP), "image 2 has no file_name"),
    ("file_name null", _image(file_name=None), "image 2 has file_name None"),
    ("file_name empty", _image(file_name=""), "image 2 has file_name ''"),
    ("image id missing", _image(id=_DROP), "image at position 1 has id None"),
    ("image ids repeated", _image(id=1), "two images have the id 1"),
    ("images missing", lambda d: d.pop("images"), "has no 'images' list"),
    ("category without a name", lambda d: d["categories"][1].pop("name"), "category 2 has name None"),
    ("category id a string", lambda d: d["categories"][1].update(id="2"), "category at position 1 has id '2'"),
    ("category names repeated", lambda d: d["categories"][1].update(name="cat"), "two categories have the name 'cat'"),
]


def _write_images(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    for name in ("a.png", "b.png"):
        Image.new("RGB", (20, 16), "white").save(folder / name)
    return folder


@pytest.mark.parametrize(("broken", "edit", "says"), BROKEN_COCO, ids=[case[0] for case in BROKEN_COCO])
def test_a_malformed_coco_entry_is_a_data_error_naming_file_entry_and_fix(tmp_path, broken, edit, says):
    images = _write_images(tmp_path / "images")
    data = _coco()
    read_coco(_dump(tmp_path, data), images)  # the unbroken file reads
    edit(data)
    path = _dump(tmp_path, data)
    with pytest.raises(DataError) as error:
        read_coco(path, images)
    message = error.value.render()
    assert str(path) in message and says in message
    assert error.value.hint and error.value.expected


def _dump(folder: Path, data: dict) -> Path:
    path = folder / "instances.json"
    path.write_text(json.dumps(data), encoding="utf-8")  # json writes NaN and Infinity as Python reads them
    return path


def test_every_bad_annotation_is_counted_not_only_the_first(tmp_path):
    data = _coco()
    for annotation in data["annotations"]:
        annotation["bbox"] = [0, 0, math.nan, 1]
    with pytest.raises(DataError, match=r"annotation 10 \(image 1\) .* \(and 1 more annotations like it\)"):
        read_coco(_dump(tmp_path, data), _write_images(tmp_path / "images"))


def test_a_coco_dataset_refuses_a_nan_box_before_training(tmp_path):
    data = _coco()
    data["annotations"][0]["bbox"] = [1, 2, math.nan, 5]
    config = CocoDataset(annotations=str(_dump(tmp_path, data)), images=str(_write_images(tmp_path / "images")))
    with pytest.raises(DataError, match=r"annotation 10 .* not finite"):
        read_splits(config, [TaskLabels("pets", "detect", ("cat", "dog"))])


def test_a_coco_file_that_is_not_json_names_the_line(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text('{"images": [\n  {"id": 1,, "file_name": "a.png"}]}', encoding="utf-8")
    with pytest.raises(DataError, match=r"is not valid JSON: .* at line 2, column 12"):
        read_coco(path, _write_images(tmp_path / "images"))
    path.write_text(json.dumps([_coco()]), encoding="utf-8")
    with pytest.raises(DataError, match="holds a JSON list"):
        read_coco(path, tmp_path / "images")


# ---------------------------------------------------------------- text encodings

LATIN1 = "file_name,labels\ncafé.png,crème\n".encode("latin-1")


def _csv(folder: Path, manifest: Path) -> None:
    read_splits(CsvDataset(path=str(manifest), images=str(folder)), [TaskLabels("t", "classify", None)])


def _vocabulary(folder: Path, vocabulary: Path) -> None:
    manifest = folder / "labels.csv"
    manifest.write_text("file_name,labels\na.png,cat\nb.png,dog\n", encoding="utf-8")
    config = CsvDataset(path=str(manifest), images=str(folder), vocabulary=str(vocabulary))
    read_splits(config, [TaskLabels("t", "multilabel", None)])


def _json(folder: Path, manifest: Path) -> None:
    read_splits(JsonDataset(path=str(manifest), images=str(folder)), [TaskLabels("t", "classify", None)])


def _class_names(folder: Path, classes: Path) -> None:
    masks = folder.parent / "masks"
    masks.mkdir()
    for name in ("a", "b"):
        Image.new("L", (20, 16)).save(masks / f"{name}.png")
    config = MasksDataset(images=str(folder), masks=str(masks), classes=str(classes), split=[0.5, 0.5])
    read_splits(config, [TaskLabels("t", "segment", None)])


def _coco_file(folder: Path, annotations: Path) -> None:
    read_coco(annotations, folder)


#: Every text file a dataset names, the file name it gets, and the dataset that reads it.
TEXT_FILES = [
    ("csv manifest", "labels.csv", _csv),
    ("csv vocabulary", "vocabulary.txt", _vocabulary),
    ("json manifest", "labels.json", _json),
    ("jsonl manifest", "labels.jsonl", _json),
    ("classes.txt", "classes.txt", _class_names),
    ("coco annotations", "instances.json", _coco_file),
]


@pytest.mark.parametrize(("kind", "name", "read"), TEXT_FILES, ids=[case[0] for case in TEXT_FILES])
def test_a_text_file_that_is_not_utf8_is_a_data_error(tmp_path, kind, name, read):
    images = _write_images(tmp_path / "images")
    path = tmp_path / name
    path.write_bytes(LATIN1)  # "café" in Latin-1: byte 0xe9 on line 2
    with pytest.raises(DataError) as error:
        read(images, path)
    message = error.value.render()
    assert f"{path} is not UTF-8 text: byte 0xe9 on line 2" in message
    assert "save" in (error.value.hint or "") and name in (error.value.hint or "")


def test_a_csv_manifest_that_csv_cannot_parse_is_a_data_error(tmp_path):
    images = _write_images(tmp_path / "images")
    manifest = tmp_path / "labels.csv"
    manifest.write_text("file_name,labels\na.png," + "x" * 200_000 + "\n", encoding="utf-8")  # over csv's field limit
    with pytest.raises(DataError, match=f"{manifest} is not a readable CSV file"):
        _csv(images, manifest)


def test_a_utf8_manifest_with_a_byte_order_mark_reads(tmp_path):
    images = _write_images(tmp_path / "images")
    manifest = tmp_path / "labels.csv"
    manifest.write_bytes("file_name,labels\na.png,café\nb.png,crème\n".encode("utf-8-sig"))
    splits = read_splits(CsvDataset(path=str(manifest), images=str(images), split=[0.5, 0.5]),
                         [TaskLabels("t", "classify", ("café", "crème"))])
    assert sum(len(split) for split in splits.values()) == 2
