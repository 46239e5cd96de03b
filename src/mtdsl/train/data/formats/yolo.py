"""The ``yolo`` format: an Ultralytics ``data.yaml``, images under ``images/``, a label file each under ``labels/``.

A label file holds a line per object, ``class cx cy w h`` normalised to 0..1
(a polygon ``class x1 y1 x2 y2 …`` of at least 3 points counts as its
bounding box). Every malformed line is a :class:`~mtdsl.errors.DataError`
located at ``file:line``; boxes are turned into pixels with each image's size,
read from its header (the pixels are not decoded).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from mtdsl.errors import DataError
from mtdsl.spec.data import YoloDataset
from mtdsl.train.data.box_mask_targets import IGNORE_INDEX, MaskTarget, object_array, value_lookup
from mtdsl.train.data.decode import oriented_size
from mtdsl.train.data.formats.boxes import DetectionExamples, boxes_table
from mtdsl.train.data.formats.coco_masks import CocoMask, segment_classes
from mtdsl.train.data.formats.registry import READERS
from mtdsl.train.data.sources import (
    IMAGE_SUFFIXES,
    Table,
    check_images_exist,
    describe,
    read_text,
    unreadable_image,
)
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.data.transforms import IMAGE_ERRORS

__all__ = ["YoloLabels", "label_path", "read_data_yaml", "read_label_file", "read_yolo_dataset"]

SPLITS = ("train", "val", "test")


def read_data_yaml(path: Path, where: str) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    """The class names of a ``data.yaml``, and the image files of each split it lists.

    Raises:
        DataError: the file is not YAML (at its line and column), lacks
            ``names``, ``train`` or ``val``, or names a folder or list that does not exist.
    """
    text = read_text(path, where, "an Ultralytics data.yaml")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise DataError(f"{where}: {path}{at} is not valid YAML ({getattr(error, 'problem', None) or error})",
                        expected="an Ultralytics data.yaml: path, train, val, test and names") from None
    if not isinstance(data, dict):
        raise DataError(f"{where}: {path} holds {type(data).__name__} {data!r:.60}, not a mapping",
                        expected="an Ultralytics data.yaml: path, train, val, test and names")
    for key in ("names", "train", "val"):
        if data.get(key) in (None, "", [], {}):
            raise DataError(f"{where}: {path} has no '{key}'",
                            expected="an Ultralytics data.yaml with names, train and val (path and test optional)",
                            hint=f"add {key}: … to {path.name}"
                            + (", e.g. names: [cat, dog]" if key == "names" else ", e.g. train: images/train"))
    names = _names(data["names"], path, where)
    if "nc" in data and data["nc"] != len(names):
        raise DataError(f"{where}: {path} has nc: {data['nc']!r}, but names lists {len(names)} classes",
                        hint="make nc the number of names, or remove nc")
    root = Path(data["path"]) if data.get("path") else Path()
    if not root.is_absolute():
        root = path.parent / root
    splits = {key: _split_images(data[key], key, root, path, where) for key in SPLITS if data.get(key)}
    return names, splits


def _names(value: object, path: Path, where: str) -> tuple[str, ...]:
    if isinstance(value, dict):
        ids = sorted(value) if all(isinstance(key, int) and not isinstance(key, bool) for key in value) else None
        if ids is None or ids != list(range(len(ids))):
            raise DataError(f"{where}: {path} has names with keys {list(value)[:10]}",
                            expected="names as a list, or as {0: name, 1: name, …} with ids 0 … N-1",
                            hint="number the classes from 0 without gaps")
        value = [value[i] for i in ids]
    if not isinstance(value, list) or not all(isinstance(name, str | int) and str(name).strip() for name in value):
        raise DataError(f"{where}: {path} has names {value!r:.80}", expected="a list of class names, e.g. [cat, dog]")
    names = tuple(str(name).strip() for name in value)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"{where}: {path} names class '{repeated[0]}' twice", hint="give each class id its own name")
    return names


def _split_images(value: object, key: str, root: Path, path: Path, where: str) -> list[str]:
    """The images of one split entry: a folder (searched recursively), a ``.txt`` list of images, or a list of those."""
    entries = value if isinstance(value, list) else [value]
    images: list[str] = []
    for entry in entries:
        if not isinstance(entry, str):
            raise DataError(f"{where}: {path} has {key}: {entry!r:.60}",
                            expected="a folder of images, a .txt file listing images, or a list of them")
        place = root / entry
        if place.is_dir():
            images += sorted(
                os.path.join(folder, name) for folder, _, files in os.walk(place) for name in files
                if Path(name).suffix.lower() in IMAGE_SUFFIXES and not name.startswith(".")
            )
        elif place.is_file() and place.suffix == ".txt":
            listed = read_text(place, where, "a list of image paths, one a line")
            images += [str(place.parent / line.strip()) for line in listed.splitlines() if line.strip()]
        else:
            raise DataError(
                f"{where}: {path} has {key}: {entry}, but {place} is neither a folder nor a .txt file",
                expected=f"{key}: a folder of images or a .txt list of images, relative to {root}",
                hint="check 'path' in data.yaml (relative to the folder of data.yaml) and the split's entry",
            )
    return images


def label_path(image: str) -> Path:
    """The label file of ``image``: its last ``images`` folder becomes ``labels``, its suffix ``.txt``.

    >>> label_path("coco8/images/train/a.jpg").as_posix()
    'coco8/labels/train/a.txt'
    """
    parts = list(Path(image).parts)
    if "images" not in parts[:-1]:
        raise ValueError(f"{image} is not under an 'images' folder")
    at = len(parts) - 2 - parts[:-1][::-1].index("images")
    parts[at] = "labels"
    return Path(*parts).with_suffix(".txt")


@dataclass(frozen=True)
class YoloLabels:
    """One label file, read and checked.

    Attributes:
        boxes: ``(G, 4)`` float32 normalised ``(cx, cy, w, h)`` (a polygon's bounding box).
        classes: ``(G,)`` int64 class ids.
        polygons: per object its normalised ``x1, y1, x2, y2, …``, or ``None`` for a box line.
        lines: per object its line number in the file.
    """

    boxes: np.ndarray
    classes: np.ndarray
    polygons: tuple[tuple[float, ...] | None, ...] = ()
    lines: tuple[int, ...] = ()


NO_LABELS = YoloLabels(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))


def read_label_file(path: Path, classes: int, where: str) -> YoloLabels:
    """One label file: each line's box (a polygon's bounding box), class, polygon and line number.

    Raises:
        DataError: at ``path:line``, a line that is not a class id below
            ``classes`` and 4 numbers (or a polygon) in 0..1.
    """
    text = read_text(path, where, "a YOLO label file: one 'class cx cy w h' line per object")
    boxes, labels, polygons, lines = [], [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue

        def bad(problem: str, expected: str = "'class cx cy w h', the box's centre and size normalised to 0..1",
                number: int = number, line: str = line) -> DataError:
            return DataError(f"{where}: {path}:{number}: {problem} in '{line.strip():.80}'", expected=expected,
                             hint=f"fix or delete line {number} of {path}")

        if not words[0].isdigit():
            raise bad(f"class '{words[0]}' is not a class id", f"a class id 0 … {classes - 1}, then 4 numbers")
        label = int(words[0])
        if label >= classes:
            raise bad(f"class {label} is not below the {classes} names of data.yaml",
                      f"a class id 0 … {classes - 1} (data.yaml's names, in order)")
        try:
            values = [float(word) for word in words[1:]]
        except ValueError:
            word = next(w for w in words[1:] if not _is_float(w))
            raise bad(f"'{word}' is not a number") from None
        if len(values) != 4 and (len(values) < 6 or len(values) % 2):
            raise bad(f"{len(values)} numbers after the class",
                      "4 numbers (cx cy w h), or a polygon of at least 3 x y pairs, normalised to 0..1")
        if not all(math.isfinite(v) and -1e-6 <= v <= 1 + 1e-6 for v in values):
            raise bad("a coordinate outside 0..1", "coordinates normalised by the image's width and height, 0..1")
        if len(values) == 4:
            box = values
        else:
            xs, ys = values[0::2], values[1::2]
            box = [(min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)]
        boxes.append(box)
        labels.append(label)
        polygons.append(None if len(values) == 4 else tuple(values))
        lines.append(number)
    return YoloLabels(np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(labels, dtype=np.int64),
                      tuple(polygons), tuple(lines))


def _is_float(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def _image_size(path: str) -> tuple[int, int]:
    """The upright image's (width, height): YOLO's 0..1 coordinates are fractions of the picture as viewed."""
    try:
        return oriented_size(path)
    except IMAGE_ERRORS as error:
        raise unreadable_image(path, error) from None


@READERS.register("yolo")
def read_yolo_dataset(config: YoloDataset, tasks: Sequence[TaskLabels]) -> Table:
    """A ``yolo`` dataset: each image's boxes in pixels (detect tasks) or polygons as a class mask (segment tasks).

    A segment task's class 0 is the background and its other classes are
    ``names``; every object must then be a polygon (Ultralytics' segment
    labels), painted in file order.

    ``split = given`` keeps data.yaml's splits (an image listed in two of them
    is an error); a ratio split pools their images.
    """
    where = describe(config)
    path = Path(config.data)
    if not path.is_file():
        raise DataError(f"{where}: the file {path} does not exist", expected="an Ultralytics data.yaml")
    names, splits = read_data_yaml(path, where)
    images: list[str] = []
    parts: dict[str, np.ndarray] = {}
    for split, listed in splits.items():
        start = len(images)
        images += listed
        parts[split] = np.arange(start, len(images))
    if not images:
        raise DataError(f"{where}: the splits of {path} list no images", expected="image files under images/")
    check_images_exist(images, where, expected="every image data.yaml lists",
                       hint="check 'path' and the split entries of data.yaml")
    seen: dict[str, str] = {}
    for split, indices in parts.items():
        for i in indices.tolist():
            if images[i] in seen and seen[images[i]] != split:
                raise DataError(f"{where}: {images[i]} is in both the {seen[images[i]]} and the {split} split",
                                hint="list each image in one split of data.yaml")
            seen[images[i]] = split
    segments = [task for task in tasks if task.learns_from == "masks"]
    boxes, labels, masks = [], [], []
    for image in images:
        try:
            label = label_path(image)
        except ValueError:
            raise DataError(f"{where}: the image {image} is not under an images/ folder, so it has no labels/ "
                            "folder beside it", hint="keep images in …/images/… and labels in …/labels/…") from None
        found = read_label_file(label, len(names), where) if label.is_file() else NO_LABELS
        width, height = _image_size(image) if len(found.boxes) or segments else (1, 1)
        scale = np.array([width, height, width, height], dtype=np.float32)
        centre, size = found.boxes[:, :2], found.boxes[:, 2:]
        xyxy = np.concatenate([centre - size / 2, centre + size / 2], axis=1) * scale
        keep = (size[:, 0] > 0) & (size[:, 1] > 0)
        boxes.append(np.ascontiguousarray(xyxy[keep], dtype=np.float32))
        labels.append(found.classes[keep])
        if segments:
            masks.append(_polygon_mask(found, label, image, width, height, where))
    every = DetectionExamples(tuple(images), tuple(boxes), tuple(labels), names)
    extra = {}
    for task in segments:
        classes = segment_classes(task, names, where)
        value = np.array([classes.index(name) if name in classes else 0 for name in names], dtype=np.int64)
        lookup = value_lookup({v: v for v in range(len(classes))}, [IGNORE_INDEX])
        extra[task.task] = object_array([MaskTarget(mask.painting(value), lookup) for mask in masks])
    return boxes_table(config, tasks, every, where, parts if config.split == "given" else None, extra)


@dataclass(frozen=True)
class _Polygons:
    """An image's polygons in pixels, with their class ids, before a task names the value each paints."""

    label: str
    height: int
    width: int
    polygons: tuple[tuple[list[float], int], ...]

    def painting(self, value: np.ndarray) -> CocoMask:
        """The mask of a task whose class value of class id ``i`` is ``value[i]`` (0: not painted)."""
        return CocoMask(self.label, self.height, self.width,
                        tuple(([polygon], int(value[label])) for polygon, label in self.polygons if value[label]))


def _polygon_mask(found: YoloLabels, label: Path, image: str, width: int, height: int, where: str) -> _Polygons:
    """The polygons of one label file in pixels, for segment tasks.

    Raises:
        DataError: at ``file:line``, a box line: a segment task paints polygons.
    """
    polygons = []
    for polygon, class_id, line in zip(found.polygons, found.classes.tolist(), found.lines):
        if polygon is None:
            raise DataError(
                f"{where}: {label}:{line}: a box, but a segment task paints polygons",
                expected="'class x1 y1 x2 y2 x3 y3 …', a polygon normalised to 0..1 (Ultralytics' segment labels)",
                hint=f"write the object's outline on line {line} of {label}, or learn boxes with a detect task",
            )
        pixels = [v * (width if i % 2 == 0 else height) for i, v in enumerate(polygon)]
        polygons.append((pixels, class_id))
    return _Polygons(f"the polygons of {label} (image {image})", height, width, tuple(polygons))
