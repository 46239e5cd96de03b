"""The ``voc`` format: Pascal VOC's ``Annotations/*.xml``, ``JPEGImages/`` and ``ImageSets/Main/*.txt``.

An annotation file names its image (``filename``) and lists ``object``
elements, each a ``name`` and a ``bndbox`` of 1-based, inclusive pixel indices
``xmin ymin xmax ymax``; they become ``(xmin - 1, ymin - 1, xmax, ymax)`` in
the pixel-edge coordinates every box in mtdsl uses. Every malformed file is a
:class:`~mtdsl.errors.DataError` located at ``file:line``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

import numpy as np

from mtdsl.errors import DataError
from mtdsl.spec.data import VocDataset
from mtdsl.train.data.formats.boxes import DetectionExamples, boxes_table
from mtdsl.train.data.formats.registry import READERS
from mtdsl.train.data.sources import Table, check_images_exist, describe, read_text
from mtdsl.train.data.tasks import TaskLabels

__all__ = ["VocObject", "read_voc_dataset", "read_voc_file"]

SPLITS = ("train", "val", "test")


@dataclass
class _Element:
    tag: str
    line: int
    children: list[_Element] = field(default_factory=list)
    text: str = ""

    def find(self, tag: str) -> _Element | None:
        return next((child for child in self.children if child.tag == tag), None)


def _parse(text: str, path: Path, where: str) -> _Element:
    """The XML of ``text`` as a tree whose elements know their line."""
    parser = expat.ParserCreate()
    root = _Element("", 0)
    stack = [root]

    def start(tag: str, _attributes: dict) -> None:
        element = _Element(tag, parser.CurrentLineNumber)
        stack[-1].children.append(element)
        stack.append(element)

    def end(_tag: str) -> None:
        stack.pop()

    def data(chunk: str) -> None:
        stack[-1].text += chunk

    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, data
    try:
        parser.Parse(text, True)
    except expat.ExpatError as error:
        raise DataError(f"{where}: {path}:{error.lineno}:{error.offset + 1}: not well-formed XML "
                        f"({expat.ErrorString(error.code)})",
                        expected="a Pascal VOC annotation: <annotation> with <filename>, <size> and <object>s",
                        hint=f"fix {path.name} at line {error.lineno}") from None
    return root.children[0]


@dataclass(frozen=True)
class VocObject:
    """One object of an annotation file: its class name, box (pixel edges) and ``difficult`` flag."""

    name: str
    box: tuple[float, float, float, float]
    difficult: bool


def read_voc_file(path: Path, where: str) -> tuple[str | None, list[VocObject]]:
    """An annotation file's image ``filename`` (``None`` when absent) and objects.

    Raises:
        DataError: at ``path:line``, XML that is not well-formed, an object
            without a name or a ``bndbox`` of four numbers with ``xmin <= xmax``
            and ``ymin <= ymax``, or a ``difficult`` flag other than 0 or 1.
    """
    root = _parse(read_text(path, where, "a Pascal VOC annotation XML file"), path, where)
    if root.tag != "annotation":
        raise DataError(f"{where}: {path}:{root.line}: the root element is <{root.tag}>, not <annotation>",
                        expected="a Pascal VOC annotation file")
    filename = root.find("filename")
    objects = []
    for element in (child for child in root.children if child.tag == "object"):
        def bad(problem: str, line: int, element: _Element = element) -> DataError:
            return DataError(
                f"{where}: {path}:{line}: the object of line {element.line} {problem}",
                expected="<object><name>class</name><bndbox><xmin>…</xmin><ymin>…</ymin><xmax>…</xmax>"
                "<ymax>…</ymax></bndbox></object>, 1-based pixels with xmin <= xmax and ymin <= ymax",
                hint=f"fix or delete the object at line {element.line} of {path}",
            )

        name = element.find("name")
        if name is None or not name.text.strip():
            raise bad("has no <name>", element.line if name is None else name.line)
        bndbox = element.find("bndbox")
        if bndbox is None:
            raise bad("has no <bndbox>", element.line)
        values = []
        for key in ("xmin", "ymin", "xmax", "ymax"):
            corner = bndbox.find(key)
            if corner is None:
                raise bad(f"has no <{key}> in its <bndbox>", bndbox.line)
            try:
                values.append(float(corner.text))
            except ValueError:
                raise bad(f"has <{key}>{corner.text.strip()}</{key}>, which is not a number", corner.line) from None
            if not math.isfinite(values[-1]):
                raise bad(f"has <{key}>{corner.text.strip()}</{key}>, which is not finite", corner.line)
        xmin, ymin, xmax, ymax = values
        if xmin > xmax or ymin > ymax:
            raise bad(f"has a box whose min is past its max ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g})", bndbox.line)
        difficult = element.find("difficult")
        flag = difficult.text.strip() if difficult is not None else "0"
        if flag not in ("0", "1"):
            assert difficult is not None
            raise bad(f"has <difficult>{flag}</difficult>, which is neither 0 nor 1", difficult.line)
        objects.append(VocObject(name.text.strip(), (xmin - 1, ymin - 1, xmax, ymax), flag == "1"))
    return (filename.text.strip() or None) if filename is not None else None, objects


def _image_ids(root: Path, split: str, where: str) -> list[tuple[int, str]]:
    """``(line number, image id)`` of each image an ``ImageSets/Main`` list names."""
    path = root / "ImageSets" / "Main" / f"{split}.txt"
    lines = read_text(path, where, "one image id a line").splitlines()
    return [(number, line.split()[0]) for number, line in enumerate(lines, start=1) if line.strip()]


@READERS.register("voc")
def read_voc_dataset(config: VocDataset, tasks: Sequence[TaskLabels]) -> Table:
    """A ``voc`` dataset for its detect tasks: each image's boxes from its annotation file.

    The classes are the object names found in the files read, sorted. Objects
    marked difficult are dropped unless the dataset says ``difficult = true``.
    """
    where = describe(config)
    root = Path(config.root)
    annotations = root / "Annotations"
    if not annotations.is_dir():
        raise DataError(f"{where}: {annotations} does not exist",
                        expected="a Pascal VOC folder: Annotations/, JPEGImages/ and ImageSets/Main/",
                        hint="point root at the folder holding Annotations/ (e.g. VOCdevkit/VOC2007)")
    if config.split == "given":
        sets = root / "ImageSets" / "Main"
        missing = [split for split in ("train", "val") if not (sets / f"{split}.txt").is_file()]
        if missing:
            raise DataError(f"{where}: split = given needs {sets}/train.txt and val.txt; {missing[0]}.txt is missing",
                            expected="ImageSets/Main/train.txt, val.txt and optionally test.txt: an image id a line",
                            hint="write ratios, e.g. split = 0.8/0.2, to split every file of Annotations/")
        ids = {split: _image_ids(root, split, where) for split in SPLITS if (sets / f"{split}.txt").is_file()}
    else:
        ids = {"": [(0, path.stem) for path in sorted(annotations.glob("*.xml"))]}
        if not ids[""]:
            raise DataError(f"{where}: {annotations} holds no .xml files", expected="an annotation file per image")
    images: list[str] = []
    found: list[list[VocObject]] = []
    parts: dict[str, np.ndarray] = {}
    for split, listed in ids.items():
        start = len(images)
        for number, image_id in listed:
            xml = annotations / f"{image_id}.xml"
            if not xml.is_file():
                raise DataError(f"{where}: {root}/ImageSets/Main/{split}.txt:{number}: image {image_id} has no "
                                f"{xml}", hint=f"add the annotation file, or remove line {number}")
            filename, objects = read_voc_file(xml, where)
            images.append(str(root / "JPEGImages" / (filename or f"{image_id}.jpg")))
            found.append([o for o in objects if config.difficult or not o.difficult])
        parts[split] = np.arange(start, len(images))
    check_images_exist(images, where, expected="JPEGImages/<filename> for every annotation file",
                       hint="check the annotation files' <filename> and the JPEGImages folder")
    names = tuple(sorted({o.name for objects in found for o in objects}))
    index = {name: i for i, name in enumerate(names)}
    every = DetectionExamples(
        tuple(images),
        tuple(np.array([o.box for o in objects], dtype=np.float32).reshape(-1, 4) for objects in found),
        tuple(np.array([index[o.name] for o in objects], dtype=np.int64) for objects in found),
        names,
    )
    return boxes_table(config, tasks, every, where, parts if config.split == "given" else None)
