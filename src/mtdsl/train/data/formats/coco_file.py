"""Reading a COCO ``instances`` file, and refusing a malformed one while it is read.

Every entry is checked here, before any image is opened: a box that is not
four finite numbers, an image without a ``file_name``, a ``category_id`` that
is a string or names no category, an annotation of an image the file does not
list. Each is a :class:`~mtdsl.errors.DataError` naming the file, the entry
and the fix, never a traceback in a loader worker or a NaN loss an hour later.

For an annotation whose ``bbox`` holds a string::

    data error: COCO annotations heads.json: annotation 1 (image 7) has bbox [1, 2, 3, '4']
      expected: an annotation of a listed image_id and category_id, with bbox [x, y, width, height]:
                four finite numbers, width and height >= 0; the category ids are 1
      hint: fix or remove those annotations in heads.json
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path

from mtdsl.errors import DataError
from mtdsl.train.data.sources import read_text

__all__ = ["CocoAnnotation", "CocoFile", "keypoints_problem", "read_coco_file", "segmentation_problem"]


def _shown(value: object) -> str:
    """A short repr of a bad value: a whole malformed entry can be long."""
    short = reprlib.Repr()
    short.maxstring, short.maxlist, short.maxdict, short.maxother = 40, 6, 4, 40
    return short.repr(value)


@dataclass(frozen=True)
class CocoAnnotation:
    """One checked annotation.

    Attributes:
        category: its ``category_id``.
        bbox: ``(x, y, width, height)`` in pixels, finite, width and height >= 0.
        crowd: whether it is a crowd region (``iscrowd``).
        segmentation: its ``segmentation`` as the file has it (``None`` when
            absent), checked by :func:`segmentation_problem` only when a segment
            task reads it: files made for detection often leave it empty.
        keypoints: its ``keypoints`` as the file has it (``None`` when absent), checked by
            :func:`keypoints_problem` only when a task of named points reads it.
        id: its ``id`` (``None`` when absent), for messages.
        area: the file's ``area`` (of the segmentation, not the box: COCO's small,
            medium and large ranges read it), ``None`` when the file gives none.
    """

    category: int
    bbox: tuple[float, float, float, float]
    crowd: bool
    segmentation: list | dict | None = None
    id: Hashable | None = None
    area: float | None = None
    keypoints: object = None


@dataclass(frozen=True)
class CocoFile:
    """A checked COCO instances file.

    Attributes:
        categories: ``{category id: name}``, in the file's order.
        images: ``(image id, file_name)`` in the order of the file's ``images`` list.
        annotations: per image id, its annotations in file order (images without any are absent).
        sizes: per image id, its ``(height, width)`` when the file gives both.
        points: per category id, the names of its keypoints (a keypoints file's ``keypoints`` list),
            for the categories that have any.
    """

    categories: dict[int, str]
    images: tuple[tuple[Hashable, str], ...]
    annotations: dict[Hashable, tuple[CocoAnnotation, ...]]
    sizes: dict[Hashable, tuple[int, int]] = field(default_factory=dict)
    points: dict[int, tuple[str, ...]] = field(default_factory=dict)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_id(value: object) -> bool:
    # COCO writes integer ids; some converters write strings. Floats, booleans and null are mistakes.
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value != "")


def _entries(data: dict, key: str, path: Path | str, required: bool) -> list:
    where = f"COCO annotations {path}"
    if key not in data:
        if required:
            raise DataError(f"{where} has no '{key}' list", expected="a COCO instances file: images, annotations, "
                            "categories", hint="check that this is an instances file, not a results or captions file")
        return []
    entries = data[key]
    if not isinstance(entries, list):
        raise DataError(f"{where}: '{key}' is {type(entries).__name__} {_shown(entries)}",
                        expected=f"a list of {key} entries", hint=f"write '{key}' as a JSON list [...] in {path}")
    return entries


class _Problems:
    """The entries of one kind that are wrong: raised together, first one shown, so one run finds them all."""

    def __init__(self, where: str, kind: str, expected: str, hint: str) -> None:
        self.where, self.kind, self.expected, self.hint = where, kind, expected, hint
        self.found: list[str] = []

    def add(self, problem: str) -> None:
        self.found.append(problem)

    def raise_any(self) -> None:
        if not self.found:
            return
        more = f" (and {len(self.found) - 1} more {self.kind} like it)" if len(self.found) > 1 else ""
        raise DataError(f"{self.where}: {self.found[0]}{more}", expected=self.expected, hint=self.hint)


def _check_each(entries: list, problem_of: Callable[[int, dict], str | None], problems: _Problems) -> None:
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.add(f"entry {position} of the {problems.kind} is {_shown(entry)}, not an object")
            continue
        found = problem_of(position, entry)
        if found:
            problems.add(found)
    problems.raise_any()


def _name(kind: str, position: int, entry: dict) -> str:
    """``annotation 17``, or ``annotation at position 3`` when it has no usable id."""
    return f"{kind} {entry['id']}" if _is_id(entry.get("id")) else f"{kind} at position {position}"


def _category_problem(position: int, entry: dict) -> str | None:
    if not (isinstance(entry.get("id"), int) and not isinstance(entry.get("id"), bool)):
        return f"category at position {position} has id {_shown(entry.get('id'))}"
    if not (isinstance(entry.get("name"), str) and entry["name"].strip()):
        return f"category {entry['id']} has name {_shown(entry.get('name'))}"
    names = entry.get("keypoints")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) and n.strip() for n in names)
                                  and len(set(names)) == len(names)):
        return f"category {entry['id']} has keypoints {_shown(names)}, which is not a list of distinct point names"
    return None


def _image_problem(position: int, entry: dict) -> str | None:
    if not _is_id(entry.get("id")):
        return f"image at position {position} has id {_shown(entry.get('id'))}"
    if "file_name" not in entry:
        return f"image {entry['id']} has no file_name"
    if not (isinstance(entry["file_name"], str) and entry["file_name"].strip()):
        return f"image {entry['id']} has file_name {_shown(entry['file_name'])}"
    return None


def _bbox_problem(bbox: object) -> str | None:
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
        return f"bbox {_shown(bbox)}"
    if not all(math.isfinite(v) for v in bbox):
        return f"bbox {bbox}, which is not finite"
    if bbox[2] < 0 or bbox[3] < 0:
        return f"bbox {bbox}, whose width or height is negative"
    return None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def segmentation_problem(segmentation: object) -> str | None:
    """What is wrong with a ``segmentation`` (``None``: nothing): polygons ``[[x1, y1, x2, y2, …], …]``, or an RLE.

    >>> segmentation_problem([[0, 0, 4, 0, 4]])
    'segmentation polygon [0, 0, 4, 0, 4] of 5 numbers, which is not x, y pairs of at least 3 points'
    >>> segmentation_problem({"size": [2, 2], "counts": [1, 2, 1]}) is None
    True
    """
    if isinstance(segmentation, list):
        if not segmentation:
            return "segmentation [], which has no polygon"
        for polygon in segmentation:
            if not isinstance(polygon, list) or not all(_is_number(v) and math.isfinite(v) for v in polygon):
                return f"segmentation polygon {_shown(polygon)}, which is not a list of finite numbers"
            if len(polygon) < 6 or len(polygon) % 2:
                return (f"segmentation polygon {_shown(polygon)} of {len(polygon)} numbers, "
                        "which is not x, y pairs of at least 3 points")
        return None
    if isinstance(segmentation, dict):
        size, counts = segmentation.get("size"), segmentation.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_count(v) and v > 0 for v in size)):
            return f"an RLE segmentation whose size is {_shown(size)}, not [height, width]"
        if isinstance(counts, list):
            if not all(_is_count(v) for v in counts) or sum(counts) != size[0] * size[1]:
                return (f"an RLE segmentation whose counts {_shown(counts)} are not run lengths "
                        f"summing to {size[0]}x{size[1]} = {size[0] * size[1]} pixels")
            return None
        if not (isinstance(counts, str) and counts):
            return f"an RLE segmentation whose counts are {_shown(counts)}, neither a list of run lengths nor a string"
        return None
    return f"segmentation {_shown(segmentation)}, neither a list of polygons nor an RLE object"


def keypoints_problem(keypoints: object, count: int) -> str | None:
    """What is wrong with an annotation's ``keypoints`` for a category of ``count`` points (``None``: nothing).

    >>> print(keypoints_problem([10, 20, 2, 0, 0, 0], 3))
    keypoints of 6 numbers, not x, y, v for each of its category's 3 points (9 numbers)
    >>> keypoints_problem([10, 20, 3], 1)
    'keypoints whose visibility v is 3, which is none of 0 (not labelled), 1 (labelled, hidden) and 2 (visible)'
    """
    if not isinstance(keypoints, list) or not all(_is_number(v) and math.isfinite(v) for v in keypoints):
        return f"keypoints {_shown(keypoints)}, which is not a list of finite numbers"
    if len(keypoints) != 3 * count:
        return (f"keypoints of {len(keypoints)} numbers, not x, y, v for each of its category's {count} points "
                f"({3 * count} numbers)")
    for visibility in keypoints[2::3]:
        if visibility not in (0, 1, 2):
            return (f"keypoints whose visibility v is {_shown(visibility)}, which is none of 0 (not labelled), "
                    "1 (labelled, hidden) and 2 (visible)")
    return None


def _duplicates(values: list) -> list:
    seen: set = set()
    repeated = []
    for value in values:
        if value in seen:
            repeated.append(value)
        seen.add(value)
    return repeated


def read_coco_file(path: Path | str) -> CocoFile:
    """Read and check a COCO ``instances`` JSON file.

    Args:
        path: the file (``images``; ``annotations`` and ``categories`` may be absent).

    Returns:
        Its categories, images and, per image, annotations; crowds and boxes with
        no area are kept (the caller decides what to learn from).

    Raises:
        DataError: the file is unreadable, not UTF-8, not JSON, or an entry is
            malformed: a category without an integer id or a name, an image
            without an id or a ``file_name``, duplicate ids, or an annotation
            whose ``image_id`` or ``category_id`` is unknown (or a string where
            the categories' ids are integers), whose ``bbox`` is not
            ``[x, y, width, height]`` of finite numbers with width, height >= 0,
            whose ``iscrowd`` is neither 0 nor 1, or whose ``area`` is not a number >= 0.
    """
    where = f"COCO annotations {path}"
    text = read_text(path, where, "a COCO instances JSON file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{where} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}",
                        expected="a COCO instances JSON file") from None
    if not isinstance(data, dict):
        raise DataError(f"{where} holds a JSON {type(data).__name__}", expected="a JSON object with images, "
                        "annotations and categories", hint="point annotations at a COCO instances file")

    category_entries = _entries(data, "categories", path, required=False)
    _check_each(category_entries, _category_problem, _Problems(
        where, "categories", "a category is {\"id\": <integer>, \"name\": <text>}",
        f"fix the category in {path}"))
    categories = {entry["id"]: entry["name"].strip() for entry in category_entries}
    for what, values in (("id", [e["id"] for e in category_entries]), ("name", list(categories.values()))):
        repeated = _duplicates(values)
        if repeated:
            raise DataError(f"{where}: two categories have the {what} {_shown(repeated[0])}",
                            expected="a unique id and name per category", hint=f"merge or rename them in {path}")

    image_entries = _entries(data, "images", path, required=True)
    _check_each(image_entries, _image_problem, _Problems(
        where, "images", 'an image is {"id": <integer>, "file_name": <path relative to the images folder>, …}',
        f"give every image of {path} an id and its file_name"))
    images = tuple((entry["id"], entry["file_name"]) for entry in image_entries)
    repeated = _duplicates([image_id for image_id, _ in images])
    if repeated:
        raise DataError(f"{where}: two images have the id {_shown(repeated[0])}", expected="a unique id per image",
                        hint=f"give each image of {path} its own id")
    image_ids = {image_id for image_id, _ in images}

    def annotation_problem(position: int, entry: dict) -> str | None:
        name = _name("annotation", position, entry)
        if "image_id" not in entry:
            return f"{name} has no image_id"
        if not _is_id(entry["image_id"]) or entry["image_id"] not in image_ids:
            return f"{name} is of image_id {_shown(entry['image_id'])}, which is not an image of the file"
        name += f" (image {entry['image_id']})"
        category = entry.get("category_id")
        if "category_id" not in entry:
            return f"{name} has no category_id"
        if not (isinstance(category, int) and not isinstance(category, bool)) or category not in categories:
            return f"{name} has category_id {_shown(category)}, which is not a category id of the file"
        if "bbox" not in entry:
            return f"{name} has no bbox"
        problem = _bbox_problem(entry["bbox"])
        if problem:
            return f"{name} has {problem}"
        if entry.get("iscrowd", 0) not in (0, 1):  # True and False compare equal to 1 and 0
            return f"{name} has iscrowd {_shown(entry['iscrowd'])}, which is neither 0 nor 1"
        area = entry.get("area")  # null as absent: training does not need it
        if area is not None and (not _is_number(area) or not math.isfinite(area) or area < 0):
            return f"{name} has area {_shown(area)}, which is not a finite number >= 0"
        return None

    annotation_entries = _entries(data, "annotations", path, required=False)
    _check_each(annotation_entries, annotation_problem, _Problems(
        where, "annotations",
        "an annotation of a listed image_id and category_id, with bbox [x, y, width, height]: "
        "four finite numbers, width and height >= 0, iscrowd 0 or 1 and area a number >= 0 when given"
        + (f"; the category ids are {', '.join(map(str, list(categories)[:20]))}" if categories else ""),
        f"fix or remove those annotations in {path}"))
    annotations: dict[Hashable, list[CocoAnnotation]] = {}
    for entry in annotation_entries:
        bbox = tuple(float(v) for v in entry["bbox"])
        area = float(entry["area"]) if entry.get("area") is not None else None
        found = CocoAnnotation(entry["category_id"], bbox, bool(entry.get("iscrowd", 0)),  # type: ignore[arg-type]
                               entry.get("segmentation"), entry.get("id"), area, entry.get("keypoints"))
        annotations.setdefault(entry["image_id"], []).append(found)
    sizes = {entry["id"]: (entry["height"], entry["width"]) for entry in image_entries
             if _is_count(entry.get("height")) and _is_count(entry.get("width")) and entry["height"] * entry["width"]}
    points = {entry["id"]: tuple(name.strip() for name in entry["keypoints"]) for entry in category_entries
              if entry.get("keypoints")}
    return CocoFile(categories, images, {key: tuple(found) for key, found in annotations.items()}, sizes, points)

