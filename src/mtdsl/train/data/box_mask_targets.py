"""The targets of detect and segment tasks: boxes and class-index masks, per example.

The training loop reads boxes and masks through :func:`mtdsl.train.data.datasets.read_splits`
and :class:`mtdsl.train.data.datasets.ImageDataset`, which use the pieces here:

* the per-example :class:`BoxTarget` and :class:`MaskTarget`, which the
  readers of :mod:`mtdsl.train.data.formats` make (``coco``, ``masks``);
* :func:`synthetic_targets`, the boxes and masks of the built-in synthetic shapes;
* :func:`check_dense_classes`, a task's classes against a dataset's;
* :func:`read_mask_file` and :func:`check_mask_size`, a mask PNG when its image is read.

Images with boxes or masks are resized by :class:`mtdsl.train.data.letterbox.Letterbox`,
which moves them with the pixels.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
from PIL import Image

from mtdsl.errors import DataError, did_you_mean, listing
from mtdsl.spec.data import SyntheticDataset
from mtdsl.train.data.sources import ImageRef, describe
from mtdsl.train.data.synthetic import SHAPES, synthetic_sample
from mtdsl.train.data.tasks import TaskLabels

__all__ = [
    "IGNORE_INDEX",
    "SYNTHETIC_DETECT_CLASSES",
    "SYNTHETIC_SEGMENT_CLASSES",
    "BlankMask",
    "BoxTarget",
    "CocoTruth",
    "MaskSource",
    "MaskTarget",
    "SyntheticDetection",
    "blank_mask_target",
    "check_dense_classes",
    "check_mask_size",
    "object_array",
    "read_mask",
    "read_mask_file",
    "synthetic_detection",
    "synthetic_targets",
    "unletterbox_boxes",
]

#: The mask value that losses and metrics skip: void pixels, and the letterbox padding.
IGNORE_INDEX = 255


# ---------------------------------------------------------------- synthetic


@dataclass(frozen=True)
class SyntheticDetection:
    """One synthetic image as a detection and segmentation example.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        boxes: ``(1, 4)`` float32, the shape's box ``(x0, y0, x1, y1)``.
        classes: ``(1,)`` int64, the shape's index into :data:`~mtdsl.train.data.synthetic.SHAPES`.
        mask: ``(H, W)`` uint8, 0 on the background and ``1 + shape`` on the shape.
    """

    image: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    mask: np.ndarray


def synthetic_detection(index: int, size: int, seed: int) -> SyntheticDetection:
    """Sample ``index`` of :func:`~mtdsl.train.data.synthetic.synthetic_sample` as boxes, classes and a mask.

    >>> sample = synthetic_detection(3, 64, 0)
    >>> sample.boxes.shape, sample.classes.shape, sample.mask.shape
    ((1, 4), (1,), (64, 64))
    """
    sample = synthetic_sample(index, size, seed)
    return SyntheticDetection(
        image=sample.image,
        boxes=np.array([sample.box], dtype=np.float32),
        classes=np.array([sample.shape], dtype=np.int64),
        mask=sample.mask,
    )


# ---------------------------------------------------------------- targets for the shared data path
#
# ``mtdsl.train.data.datasets.read_splits`` reads one dataset for every task of a stream;
# for detect and segment tasks it keeps, per example, a BoxTarget or a
# MaskTarget in a numpy object array (so ``Examples.subset`` and joining
# datasets are plain indexing and concatenation).

#: The classes of a detect task on a synthetic dataset, and of a segment task (mask value = class index).
SYNTHETIC_DETECT_CLASSES = SHAPES
SYNTHETIC_SEGMENT_CLASSES = ("background", *SHAPES)

#: In a :attr:`MaskTarget.lookup`, a mask value that is neither a class's nor ignored.
UNEXPECTED = -1


@dataclass(frozen=True, eq=False)
class CocoTruth:
    """One image's annotations as COCO evaluation reads them: all of them, in the file's order and pixels.

    Training learns from fewer boxes (:func:`~mtdsl.train.data.formats.coco.read_coco` drops crowd
    regions and boxes with no area); ``COCOeval`` keeps both: a detection on a
    crowd region of its class is ignored rather than counted wrong, and a box
    with no area that nothing matches is a miss. Evaluating against this, in
    the image's own pixels, gives the numbers pycocotools gives on the file.

    Attributes:
        image_id: the image's ``id`` in the file.
        boxes: ``(G, 4)`` float64 ``(x0, y0, x1, y1)`` in the image file's pixels.
        classes: ``(G,)`` int64 class indices.
        areas: ``(G,)`` float64, the file's ``area`` of each annotation (COCO's
            small/medium/large ranges read it), the box's where the file gives none.
        crowd: ``(G,)`` bool, ``iscrowd``.
    """

    image_id: Hashable
    boxes: np.ndarray
    classes: np.ndarray
    areas: np.ndarray
    crowd: np.ndarray

    def select(self, lookup: np.ndarray) -> CocoTruth:
        """The annotations whose class ``lookup`` maps to a class index (>= 0), with their classes mapped."""
        mapped = lookup[self.classes] if len(self.classes) else self.classes
        keep = mapped >= 0
        return CocoTruth(self.image_id, self.boxes[keep], mapped[keep], self.areas[keep], self.crowd[keep])


@dataclass(frozen=True, eq=False)
class BoxTarget:
    """One example's boxes for one detect task.

    Attributes:
        boxes: ``(G, 4)`` float32 ``(x0, y0, x1, y1)`` in the image file's pixels.
        classes: ``(G,)`` int64 indices into the task's classes.
        annotated: ``(C,)`` bool over the task's classes: the classes the
            example's dataset labels. Where it is False the image says nothing
            about that class (it came from a dataset that does not annotate it),
            so a loss masks the class out for this example.
        truth: what COCO evaluation compares the task's detections with: the
            image's annotations of the task's classes in its file, crowds
            included (``None`` for sources without one: ``boxes`` then serve).
    """

    boxes: np.ndarray
    classes: np.ndarray
    annotated: np.ndarray
    truth: CocoTruth | None = None

    def original(self, scale: tuple[float, float], size: tuple[int, int], flipped: bool = False) -> dict[str, Any]:
        """What evaluation needs to score this image's detections in the image's own pixels.

        Args:
            scale: the letterbox's ``(sx, sy)``, network pixels per image pixel.
            size: the image file's ``(width, height)``.
            flipped: whether the letterbox mirrored the image (a training split evaluated as it trains).

        Returns:
            ``{"boxes": (G, 4) float64, "classes": (G,) int64, "areas": (G,)
            float64, "crowd": (G,) bool, "image_id", "scale": (sx, sy), "size":
            (width, height), "flipped": bool}`` as numpy arrays (they stay on the CPU): the
            :attr:`truth`, or the training boxes (no crowds, areas of the boxes,
            ``image_id`` ``None``) where there is none.
        """
        truth = self.truth
        if truth is None:
            boxes = self.boxes.astype(np.float64).reshape(-1, 4)
            areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            truth = CocoTruth(None, boxes, self.classes, areas, np.zeros(len(boxes), dtype=bool))
        return {
            "boxes": truth.boxes, "classes": truth.classes, "areas": truth.areas, "crowd": truth.crowd,
            "image_id": truth.image_id, "scale": tuple(map(float, scale)), "size": tuple(map(int, size)),
            "flipped": bool(flipped),
        }


def unletterbox_boxes(
    boxes: np.ndarray, scale: tuple[float, float], size: tuple[int, int], flipped: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes found on a letterboxed image, in the pixels of the image itself.

    The letterbox pads at the bottom and right, so dividing by its ``scale`` is
    the whole inverse (and mirroring back, when it flipped the image); boxes
    are then clipped to the image, and a box that lay wholly in the padding has
    no pixels left.

    Args:
        boxes: ``(K, 4)`` ``(x0, y0, x1, y1)`` in network pixels (any float dtype, kept).
        scale: ``(sx, sy)``, network pixels per image pixel (:attr:`Letterboxed.scale`).
        size: the image's ``(width, height)``.
        flipped: whether the letterbox mirrored the image (:attr:`Letterboxed.flipped`).

    Returns:
        The ``(K', 4)`` boxes that keep an area, and the ``(K,)`` bool of which those are.

    >>> unletterbox_boxes(np.array([[10.0, 5, 30, 25], [0, 40, 8, 48]]), (0.5, 0.5), (60, 60))
    (array([[20., 10., 60., 50.]]), array([ True, False]))
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    sx, sy = scale
    width, height = size
    moved = boxes / np.array([sx, sy, sx, sy], dtype=boxes.dtype)
    if flipped:  # the resized image was mirrored before padding: x -> width - x
        moved = np.stack([width - moved[:, 2], moved[:, 1], width - moved[:, 0], moved[:, 3]], axis=1)
    moved = np.clip(moved, 0, np.array([width, height, width, height], dtype=boxes.dtype))
    keep = (moved[:, 2] > moved[:, 0]) & (moved[:, 3] > moved[:, 1])
    return moved[keep], keep


@dataclass(frozen=True, eq=False)
class MaskTarget:
    """One example's mask for one segment task.

    Attributes:
        mask: the mask PNG's path, the synthetic sample's index, a
            :class:`MaskSource` that makes the mask (a COCO image's polygons), or a
            :class:`BlankMask` (no dataset of the task labels the photo).
        lookup: ``(256,)`` int16: the class index of each raw mask value,
            :data:`IGNORE_INDEX` for ignored values, :data:`UNEXPECTED` for
            values that should not occur (shared by a dataset's examples).
        annotated: for a task that joins datasets, ``(C,)`` bool over its
            classes: those the example's dataset labels. The loss on its
            pixels is then a softmax over these classes alone, so a class its
            dataset does not label is never taught as "not here". ``None``
            for a task of one dataset, or a reader that does not say (all labelled).
    """

    mask: ImageRef | MaskSource | BlankMask
    lookup: np.ndarray
    annotated: np.ndarray | None = None

    def classes(self, raw: np.ndarray) -> np.ndarray:
        """``raw`` mask values as ``uint8`` class indices, :data:`IGNORE_INDEX` where ignored.

        Raises:
            DataError: the mask holds a value that is neither a class's nor ignored.
        """
        mapped = self.lookup[raw]
        if (mapped == UNEXPECTED).any():
            found = np.unique(raw[mapped == UNEXPECTED]).tolist()
            values = np.flatnonzero(self.lookup >= 0)
            classes = [str(v) for v in values if self.lookup[v] != IGNORE_INDEX]
            ignored = [str(v) for v in values if self.lookup[v] == IGNORE_INDEX]
            raise DataError(
                f"the mask {self.mask} has value(s) {', '.join(map(str, found))}, which are neither a class's "
                "value nor ignored",
                expected=f"class values {listing(classes, limit=30)}"
                + (f", or ignored values {listing(ignored)}" if ignored else ""),
                hint="add them to the dataset's ignore = [...], or give them a class (classes, class_map)",
            )
        return mapped.astype(np.uint8)


def object_array(items: Sequence[object]) -> np.ndarray:
    """A ``(N,)`` numpy object array of ``items`` (numpy would unpack sequences given to ``np.array``)."""
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        array[i] = item
    return array


def in_order(names: Sequence[str], limit: int = 20) -> str:
    """Class names in index order (``listing`` sorts them, which hides the order that matters here)."""
    return ", ".join(names[:limit]) + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


def _shown(classes: tuple[str, ...] | int | None) -> str:
    return f"classes = {classes}" if isinstance(classes, int) else f"classes = [{', '.join(classes or ())}]"


def check_dense_classes(task: TaskLabels, names: tuple[str, ...], where: str) -> tuple[str, ...]:
    """``names`` when the task's classes are them in order, or their count (or not given).

    Raises:
        DataError: the task names other classes, another order or another count.
    """
    if task.classes is None or task.classes == len(names) or task.classes == names:
        return names
    spelled = f", or classes = [{', '.join(names)}]" if len(names) <= 20 else ""
    raise DataError(
        f"{where}: {task.kind} task '{task.task}' has {_shown(task.classes)}, "
        f"but the dataset's {len(names)} classes are {in_order(names)}",
        expected=f"the dataset's classes in its order ({len(names)} of them)",
        hint=f"write classes = {len(names)}{spelled}",
    )


def task_count(task: TaskLabels) -> int | None:
    if task.classes is None:
        return None
    return task.classes if isinstance(task.classes, int) else len(task.classes)


@lru_cache(maxsize=8)
def _synthetic_boxes(count: int, size: int, seed: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    drawn = (synthetic_detection(index, size, seed) for index in range(count))
    return tuple((sample.boxes, sample.classes) for sample in drawn)


def synthetic_targets(config: SyntheticDataset, task: TaskLabels) -> np.ndarray:
    """Every synthetic example's :class:`BoxTarget` (detect) or :class:`MaskTarget` (segment) for ``task``.

    Raises:
        DataError: the task's classes are not :data:`SYNTHETIC_DETECT_CLASSES`
            (detect) or :data:`SYNTHETIC_SEGMENT_CLASSES` (segment), in that order.
    """
    where = describe(config)
    if task.learns_from == "boxes":
        boxes = _synthetic_boxes(config.count, config.size, config.seed)
        if task.partial:
            names = tuple(task.classes) if isinstance(task.classes, tuple) else ()
            return boxes_in_task_classes(boxes, SYNTHETIC_DETECT_CLASSES, names, where)
        check_dense_classes(task, SYNTHETIC_DETECT_CLASSES, where)
        annotated = np.ones(len(SYNTHETIC_DETECT_CLASSES), dtype=bool)
        return object_array([BoxTarget(b, c, annotated) for b, c in boxes])
    values = {value: value for value in range(len(SYNTHETIC_SEGMENT_CLASSES))}
    if task.partial and isinstance(task.classes, tuple):
        lookup, annotated = partial_mask_lookup(
            SYNTHETIC_SEGMENT_CLASSES, values, (), task.classes, where, ignorable=False
        )
        return object_array([MaskTarget(index, lookup, annotated) for index in range(config.count)])
    check_dense_classes(task, SYNTHETIC_SEGMENT_CLASSES, where)
    lookup = value_lookup(values, ())
    every = np.ones(len(SYNTHETIC_SEGMENT_CLASSES), dtype=bool) if task.partial else None
    return object_array([MaskTarget(index, lookup, every) for index in range(config.count)])


def annotated_classes(own: Sequence[str], names: Sequence[str], where: str) -> np.ndarray:
    """Which of a joined task's ``names`` the dataset labels (its ``own`` classes), as a boolean array.

    Raises:
        DataError: the dataset has none of the task's classes.
    """
    annotated = np.array([name in own for name in names], dtype=bool)
    if not annotated.any():
        raise DataError(
            f"{where} labels none of the classes of the task that reads it: {in_order(names)}",
            expected=f"a task class among its classes: {in_order(own)}",
            hint="check the spelling of the task's classes, or take the dataset out of the task",
        )
    return annotated


def partial_mask_lookup(
    own: Sequence[str], values: Mapping[int, int], ignore: Sequence[int], names: Sequence[str], where: str,
    *, ignorable: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The value → task class lookup and the ``(C,)`` annotated mask of a dataset in a joined segment task.

    The dataset labels the task ``names`` among its ``own`` class names; on its
    images the others are left out of the loss (:class:`MaskTarget`). Each of
    its own classes must be a task class: pixels the task should not count are
    the dataset's ``ignore`` values, said so, not a class name that merely
    fails to match (a misspelt "Raod" would otherwise drop every road pixel).

    Args:
        own: the dataset's class names, in its class order.
        values: ``{mask value: index into own}``.
        ignore: mask values that are void.
        names: the task's classes.
        ignorable: whether the dataset has an ``ignore`` field to name in the fix (a synthetic one has not).

    Raises:
        DataError: the dataset has none of the task's classes, or a class the task does not have.
    """
    annotated = annotated_classes(own, names, where)
    for name in own:
        if name not in names:
            shown = sorted(raw for raw, index in values.items() if own[index] == name)
            raise DataError(
                f"{where} labels class '{name}' (mask value {', '.join(map(str, shown))}), "
                "which the segment task that reads it does not have",
                expected=f"one of the task's classes: {in_order(names)}",
                hint=did_you_mean(name, names)
                or (f"add '{name}' to the task's classes, or take it out of the dataset's classes and put "
                    f"its mask value(s) in ignore = [...] (its pixels are then not counted)"
                    if ignorable else f"add '{name}' to the task's classes: the dataset labels every one of its"),
            )
    task_index = [list(names).index(name) for name in own]
    return value_lookup({raw: task_index[index] for raw, index in values.items()}, ignore), annotated


def boxes_in_task_classes(
    found: Sequence[tuple[np.ndarray, np.ndarray]], own: Sequence[str], names: Sequence[str], where: str
) -> np.ndarray:
    """Each image's :class:`BoxTarget` over a joined task's ``names``, from boxes in the dataset's ``own`` classes.

    The dataset annotates the task classes it has; boxes of its other classes are dropped.

    Raises:
        DataError: the dataset has none of the task's classes.
    """
    annotated = annotated_classes(own, names, where)
    lookup = np.array([list(names).index(name) if name in names else -1 for name in own], dtype=np.int64)
    targets = []
    for boxes, classes in found:
        mapped = lookup[classes]
        keep = mapped >= 0
        targets.append(BoxTarget(boxes[keep], mapped[keep], annotated))
    return object_array(targets)


def value_lookup(values: Mapping[int, int], ignore: Sequence[int]) -> np.ndarray:
    lookup = np.full(256, UNEXPECTED, dtype=np.int16)
    for raw, index in values.items():
        lookup[int(raw)] = int(index)
    for raw in ignore:
        lookup[int(raw)] = IGNORE_INDEX
    return lookup


def check_mask_size(mask: np.ndarray, size: tuple[int, int], mask_reference: object, image_reference: object) -> None:
    """Raise :class:`DataError` unless ``mask`` is ``size`` (width, height), its image's size."""
    if (mask.shape[1], mask.shape[0]) != tuple(size):
        raise DataError(
            f"the mask {mask_reference} is {mask.shape[1]}x{mask.shape[0]}, "
            f"its image {image_reference} {size[0]}x{size[1]}",
            expected="a mask the size of its image",
        )


#: Readers of the dataset kinds that carry boxes or masks only (``synthetic`` goes through :func:`synthetic_targets`).
class MaskSource(Protocol):
    """A mask made when its image is read (a COCO image's painted polygons), instead of a PNG file."""

    def read(self) -> np.ndarray: ...


@dataclass(frozen=True)
class BlankMask:
    """The mask of a photo that no dataset of the task labels (joint sampling's unknown): its image's size,
    every pixel ignored. It has no file; :class:`~mtdsl.train.data.datasets.ImageDataset` sizes it to the image."""

    def sized(self, width: int, height: int) -> np.ndarray:
        return np.zeros((height, width), dtype=np.uint8)


def blank_mask_target() -> MaskTarget:
    """A :class:`MaskTarget` that says nothing: a :class:`BlankMask` whose every value is ignored."""
    return MaskTarget(BlankMask(), np.full(256, IGNORE_INDEX, dtype=np.int16))


def read_mask(source: ImageRef | MaskSource) -> np.ndarray:
    """The raw ``(H, W)`` uint8 mask of a :attr:`MaskTarget.mask`: a PNG file's, or a source's own."""
    if isinstance(source, str):
        return read_mask_file(source)
    return source.read()  # type: ignore[union-attr]


def read_mask_file(path: str) -> np.ndarray:
    """A mask PNG as ``(H, W)`` uint8; raises one of :data:`IMAGE_ERRORS` when it cannot be read.

    Raises:
        DataError: the file is not a single-channel 8-bit image.
    """
    with Image.open(path) as picture:
        mask = np.asarray(picture)
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise DataError(
            f"the mask {path} is not a single-channel 8-bit image (shape {mask.shape}, {mask.dtype})",
            expected="a PNG of class indices, mode L or P",
        )
    return mask
