"""COCO polygons and RLEs painted into class-index masks, for segment tasks on a ``coco`` dataset.

A segment task's class 0 is the background, its other classes are categories
of the file. Each image's :class:`CocoMask` holds its annotations' shapes and
the class value each paints; :meth:`CocoMask.read` paints them (with
``pycocotools.mask``) when the image is loaded, so nothing is written to disk.
Crowd regions are painted :data:`~mtdsl.train.data.box_mask_targets.IGNORE_INDEX`, so
no loss or metric counts their pixels.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from mtdsl.errors import DataError, did_you_mean, listing
from mtdsl.spec.data import CocoDataset
from mtdsl.train.data.box_mask_targets import IGNORE_INDEX, MaskTarget, in_order, object_array, value_lookup
from mtdsl.train.data.formats.coco_file import CocoFile, segmentation_problem
from mtdsl.train.data.tasks import TaskLabels

__all__ = ["CocoMask", "coco_mask_targets", "segment_classes"]


@dataclass(frozen=True, eq=False)
class CocoMask:
    """One image's mask, painted from its COCO shapes when read.

    Attributes:
        label: how messages name it (the image and the annotation file).
        height: the image's height in pixels.
        width: its width.
        shapes: ``(segmentation, value)`` in annotation order: polygons or an
            RLE, and the mask value they paint (later shapes paint over earlier ones).
    """

    label: str
    height: int
    width: int
    shapes: tuple[tuple[list | dict, int], ...]

    def __str__(self) -> str:
        return self.label

    def read(self) -> np.ndarray:
        """The ``(height, width)`` uint8 mask: 0 where no shape is, each shape's value on its pixels."""
        mask = np.zeros((self.height, self.width), dtype=np.uint8)
        for segmentation, value in self.shapes:
            mask[_decoded(segmentation, self.height, self.width)] = value
        return mask


def _decoded(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """A shape's pixels as a ``(height, width)`` bool array."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}
    with warnings.catch_warnings():
        # pycocotools' decode trips numpy 2's copy-keyword deprecation on every call; the result is unaffected.
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def segment_classes(task: TaskLabels, categories: Sequence[str], where: str) -> tuple[str, ...]:
    """A segment task's classes on a COCO file: the background, then categories.

    ``classes = N`` takes the background and every category (``N`` is one more
    than their count); a list names the background first, then the categories
    the task learns (the others' pixels stay background).

    Raises:
        DataError: the count is not one more than the categories', the first
            class is a category, or a later one is not a category.
    """
    if task.classes is None or isinstance(task.classes, int):
        if task.classes not in (None, len(categories) + 1):
            raise DataError(
                f"{where}: segment task '{task.task}' has classes = {task.classes}, but the file has "
                f"{len(categories)} categories, so {len(categories) + 1} classes with the background",
                expected=f"classes = {len(categories) + 1}: the background, then {in_order(categories)}",
                hint=f"write classes = {len(categories) + 1}, or list the background and the categories to learn",
            )
        return ("background", *categories)
    names = tuple(task.classes)
    if names[0] in categories:
        raise DataError(
            f"{where}: segment task '{task.task}' has '{names[0]}' as class 0, the background, "
            "but it is a category of the file",
            expected="the background's name first (pixels no annotation covers), then categories",
            hint=f'write classes = ["background", {", ".join(repr(n) for n in names)}]'.replace("'", '"'),
        )
    for name in names[1:]:
        if name not in categories:
            raise DataError(
                f"{where}: segment task '{task.task}' lists class '{name}', which is not a category of the file",
                expected=f"one of its {len(categories)} categories: {listing(categories, limit=100)}",
                hint=did_you_mean(name, categories) or "fix the class name, or remove it from the task's classes",
            )
    return names


def coco_mask_targets(
    coco: CocoFile, images: Sequence[Hashable], config: CocoDataset, task: TaskLabels, where: str
) -> np.ndarray:
    """Each image's :class:`MaskTarget` for segment ``task``: a :class:`CocoMask` of its annotations.

    Args:
        coco: the checked file.
        images: the ids of the images to make masks of, in order.
        config: the dataset (``one_class`` paints every category as that one class).
        task: the segment task.
        where: how messages name the dataset.

    Raises:
        DataError: the task's classes do not fit the file's categories, an
            annotation the task reads has no segmentation or a malformed one,
            or an image has no size to paint polygons on.
    """
    categories = (config.one_class,) if config.one_class else tuple(coco.categories[i] for i in sorted(coco.categories))
    names = segment_classes(task, categories, where)
    value_of = {cat: (1 if config.one_class else names.index(name)) for cat, name in coco.categories.items()
                if config.one_class or name in names[1:]}
    if config.classes is not None:  # the categories this dataset annotates; the others stay background
        value_of = {cat: value for cat, value in value_of.items() if coco.categories[cat] in config.classes}
    targets = []
    for image_id in images:
        shapes: list[tuple[list | dict, int]] = []
        for position, annotation in enumerate(coco.annotations.get(image_id, ())):
            name = f"annotation {annotation.id}" if annotation.id is not None else f"annotation at position {position}"
            if annotation.category not in value_of:
                continue
            problem = ("no segmentation" if annotation.segmentation in (None, [], {})
                       else segmentation_problem(annotation.segmentation))
            if problem:
                raise DataError(
                    f"{where}: {name} (image {image_id}) has {problem}",
                    expected="a segmentation of polygons [[x1, y1, x2, y2, x3, y3, …], …] in pixels, or an RLE "
                    '{"size": [height, width], "counts": …}',
                    hint=f"segment task '{task.task}' paints every annotation of its classes: fix or remove it, "
                    "or read the masks from a masks(...) dataset",
                )
            value = IGNORE_INDEX if annotation.crowd else value_of[annotation.category]
            shapes.append((annotation.segmentation, value))  # type: ignore[arg-type]  # checked above
        size = coco.sizes.get(image_id) or next(
            (tuple(s["size"]) for s, _ in shapes if isinstance(s, dict)), None)
        if size is None:
            raise DataError(
                f"{where}: image {image_id} has no height and width, which segment task '{task.task}' needs "
                "to paint its polygons",
                expected='an image entry with "height" and "width" in pixels',
                hint="add each image's height and width to the annotation file",
            )
        for segmentation, _ in shapes:
            if isinstance(segmentation, dict) and tuple(segmentation["size"]) != tuple(size):
                raise DataError(
                    f"{where}: an RLE of image {image_id} is {segmentation['size'][0]}x{segmentation['size'][1]} "
                    f"(height x width), the image {size[0]}x{size[1]}",
                    expected="an RLE the size of its image",
                    hint="fix the RLE's size or the image's height and width",
                )
        mask = CocoMask(f"the segmentation of image {image_id} in {config.annotations}", int(size[0]), int(size[1]),
                        tuple(shapes))
        targets.append(MaskTarget(mask, value_lookup({v: v for v in range(len(names))}, [IGNORE_INDEX])))
    return object_array(targets)
