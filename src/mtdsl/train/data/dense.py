"""Detection and segmentation data: COCO boxes and class-index masks.

The training loop reads boxes and masks through :func:`mtdsl.train.data.datasets.read_splits`
and :class:`mtdsl.train.data.datasets.ImageDataset`, which use the pieces here:

* :data:`DENSE_READERS`, the ``coco`` and ``masks`` dataset kinds: :func:`read_coco`
  reads a COCO ``instances`` file (per image its ``(x0, y0, x1, y1)`` boxes and
  class indices), :func:`read_masks` pairs images with PNG class-index masks;
* :func:`synthetic_targets`, the boxes and masks of the built-in synthetic shapes;
* the per-example :class:`BoxTarget` and :class:`MaskTarget`.

Images with boxes or masks are resized by :class:`mtdsl.train.data.letterbox.Letterbox`,
which moves them with the pixels.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mtdsl.errors import DataError, did_you_mean, listing
from mtdsl.spec.data import CocoDataset, MasksDataset, SyntheticDataset
from mtdsl.train.data.coco_file import CocoAnnotation, read_coco_file
from mtdsl.train.data.sources import (
    ImageRef,
    Table,
    check_images_exist,
    describe,
    given_folders,
    image_files,
    read_text,
)
from mtdsl.train.data.synthetic import SHAPES, synthetic_sample
from mtdsl.train.data.tasks import TaskLabels

__all__ = [
    "DENSE_READERS",
    "IGNORE_INDEX",
    "SYNTHETIC_DETECT_CLASSES",
    "SYNTHETIC_SEGMENT_CLASSES",
    "BoxTarget",
    "CocoTruth",
    "DetectionExamples",
    "MaskExamples",
    "MaskTarget",
    "SyntheticDetection",
    "read_class_names",
    "read_coco",
    "read_coco_dataset",
    "read_mask_dataset",
    "read_mask_file",
    "read_masks",
    "synthetic_detection",
    "synthetic_targets",
    "unletterbox_boxes",
]

#: The mask value that losses and metrics skip: void pixels, and the letterbox padding.
IGNORE_INDEX = 255


# ---------------------------------------------------------------- examples


@dataclass(frozen=True, eq=False)
class CocoTruth:
    """One image's annotations as COCO evaluation reads them: all of them, in the file's order and pixels.

    Training learns from fewer boxes (:class:`DetectionExamples` drops crowd
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
class DetectionExamples:
    """Images with their boxes: what :func:`read_coco` reads from a COCO file.

    Attributes:
        images: file paths.
        boxes: per image a ``(G, 4)`` float32 array of ``(x0, y0, x1, y1)`` in
            the image file's pixels (``G`` may be 0: a negative image).
        classes: per image a ``(G,)`` int64 array of indices into ``class_names``.
        class_names: the class names in index order.
        truth: per image every annotation of ``class_names`` as COCO evaluation
            reads it, crowds and boxes with no area included.
    """

    images: tuple[ImageRef, ...]
    boxes: tuple[np.ndarray, ...]
    classes: tuple[np.ndarray, ...]
    class_names: tuple[str, ...]
    truth: tuple[CocoTruth, ...] = ()

    def __len__(self) -> int:
        return len(self.images)

    @property
    def box_count(self) -> int:
        return sum(len(boxes) for boxes in self.boxes)

def _pick_categories(
    categories: dict[int, str], classes: Sequence[str] | None, where: str
) -> tuple[tuple[str, ...], dict[int, int]]:
    """Class names in index order and ``{COCO category id: class index}``."""
    if classes is None:
        ids = sorted(categories)
        return tuple(categories[i] for i in ids), {cat: index for index, cat in enumerate(ids)}
    by_name = {name: cat for cat, name in categories.items()}
    for name in classes:
        if name not in by_name:
            raise DataError(
                f"{where}: no category '{name}' in the annotations",
                expected=f"one of its {len(by_name)} categories: {listing(by_name, limit=100)}",
                hint=did_you_mean(name, by_name) or "fix the class name, or point the task at another dataset",
            )
    repeated = sorted({name for name in classes if list(classes).count(name) > 1})
    if repeated:
        raise DataError(f"{where}: class '{repeated[0]}' is listed twice", hint="list each class once")
    return tuple(classes), {by_name[name]: index for index, name in enumerate(classes)}


def read_coco(
    instances_json: Path | str,
    images_dir: Path | str,
    classes: Sequence[str] | None = None,
    *,
    keep_empty: bool = True,
) -> DetectionExamples:
    """Read a COCO ``instances`` file: each image's boxes, in the order of the ``images`` list.

    Args:
        instances_json: the COCO annotation file (``bbox`` as ``[x, y, w, h]`` pixels).
        images_dir: the folder the images' ``file_name`` is relative to.
        classes: the COCO category names to learn, in class-index order; boxes
            of other categories are dropped. ``None`` takes every category,
            sorted by id.
        keep_empty: keep images with no box of ``classes`` as negatives. Pass
            ``False`` when an image without boxes means "not labelled" rather
            than "nothing there": oxford-pets-3class lists 600 images but boxes
            the heads of only 296.

    Returns:
        The examples. Crowd regions and boxes with no area are dropped from the
        boxes training learns from, and kept in each image's :class:`CocoTruth`.

    Raises:
        DataError: the file or folder is missing or unreadable, an entry of the
            file is malformed (see :func:`~mtdsl.train.data.coco_file.read_coco_file`),
            an image file is missing, or a class name is not a category of the file.
    """
    instances_json, images_dir = Path(instances_json), Path(images_dir)
    where = f"COCO annotations {instances_json}"
    if not instances_json.is_file():
        raise DataError(f"the COCO annotation file {instances_json} does not exist", expected="a COCO instances JSON")
    if not images_dir.is_dir():
        raise DataError(f"{where}: the images folder {images_dir} does not exist", expected="the folder of file_name")
    coco = read_coco_file(instances_json)
    names, index_of = _pick_categories(coco.categories, classes, where)

    images: list[str] = []
    boxes: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    truth: list[CocoTruth] = []
    for image_id, file_name in coco.images:
        found = [
            (ann.bbox, index_of[ann.category])
            for ann in coco.annotations.get(image_id, ())
            if ann.category in index_of and not ann.crowd
        ]
        xywh = np.array([bbox for bbox, _ in found], dtype=np.float32).reshape(-1, 4)
        keep = (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
        if not keep.any() and not keep_empty:
            continue
        xyxy = np.concatenate([xywh[keep, :2], xywh[keep, :2] + xywh[keep, 2:]], axis=1)
        images.append(str(images_dir / file_name))
        boxes.append(np.ascontiguousarray(xyxy, dtype=np.float32))
        labels.append(np.array([label for (_, label), k in zip(found, keep) if k], dtype=np.int64))
        truth.append(_coco_truth(image_id, coco.annotations.get(image_id, ()), index_of))

    check_images_exist(images, where, expected=f"every file_name under {images_dir}",
                       hint="check the images folder the annotation file's file names are relative to")
    return DetectionExamples(tuple(images), tuple(boxes), tuple(labels), names, tuple(truth))


def _coco_truth(image_id: Hashable, annotations: Sequence[CocoAnnotation], index_of: dict[int, int]) -> CocoTruth:
    """An image's annotations of the categories in ``index_of``, as :class:`CocoTruth`."""
    kept = [ann for ann in annotations if ann.category in index_of]
    xywh = np.array([ann.bbox for ann in kept], dtype=np.float64).reshape(-1, 4)
    return CocoTruth(
        image_id=image_id,
        boxes=np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
        classes=np.array([index_of[ann.category] for ann in kept], dtype=np.int64),
        areas=np.array([ann.area if ann.area is not None else ann.bbox[2] * ann.bbox[3] for ann in kept],
                       dtype=np.float64),
        crowd=np.array([ann.crowd for ann in kept], dtype=bool),
    )


@dataclass(frozen=True, eq=False)
class MaskExamples:
    """Images with class-index masks.

    Attributes:
        images: file paths.
        masks: PNG paths, one per image.
        lookup: ``(256,)`` uint8: the class index of each raw mask value, :data:`IGNORE_INDEX` for ignored ones.
    """

    images: tuple[ImageRef, ...]
    masks: tuple[ImageRef, ...]
    lookup: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def _mask_lookup(class_map: Mapping[int, int] | None, ignore: Sequence[int]) -> np.ndarray:
    for raw, index in (class_map or {}).items():
        if not (0 <= int(raw) <= 255 and 0 <= int(index) <= 255):
            raise ValueError(f"class_map entries map mask values 0..255 to classes 0..254 or 255, got {raw}: {index}")
    if class_map is None:
        lookup = np.arange(256, dtype=np.uint8)
    else:
        lookup = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        for raw, index in class_map.items():
            lookup[int(raw)] = int(index)
    for raw in ignore:
        lookup[int(raw)] = IGNORE_INDEX
    return lookup


def read_masks(
    images_dir: Path | str,
    masks_dir: Path | str,
    class_map: Mapping[int, int] | None = None,
    *,
    ignore: Sequence[int] = (),
) -> MaskExamples:
    """Pair every image in ``images_dir`` with the PNG of the same stem in ``masks_dir``.

    For CamVid (``camvid/images/<split>/*.jpg``, ``camvid/masks/<split>/*.png``
    with values 0..10 and 11 for void)::

        read_masks("camvid/images/train", "camvid/masks/train", ignore=[11])

    and for the pets trimaps (1 pet, 2 background, 3 boundary)::

        read_masks("pets/images", "pets/trimaps", {2: 0, 1: 1})  # boundary → ignored

    Args:
        images_dir: the images.
        masks_dir: one single-channel PNG per image, holding a class index per pixel.
        class_map: ``{mask value: class index}``; values it leaves out become
            :data:`IGNORE_INDEX`. ``None`` keeps the values as class indices.
        ignore: mask values to ignore (become :data:`IGNORE_INDEX`) on top of ``class_map``.

    Raises:
        DataError: a folder is missing, holds no images, or an image has no mask.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder, what in ((images_dir, "images"), (masks_dir, "masks")):
        if not folder.is_dir():
            raise DataError(f"the {what} folder {folder} does not exist", expected=f"a folder of {what}")
    images = [Path(file) for file in image_files(images_dir, f"the images folder {images_dir}")]
    if not images:
        raise DataError(f"the images folder {images_dir} holds no images", expected="JPEG or PNG files")
    masks = [masks_dir / f"{image.stem}.png" for image in images]
    missing = [image.name for image, mask in zip(images, masks) if not mask.is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(images)} images in {images_dir} have no mask in {masks_dir}, e.g. {missing[0]}",
            expected="<image stem>.png in the masks folder for every image",
            hint="check that the images and masks folders belong to the same split",
        )
    return MaskExamples(tuple(map(str, images)), tuple(map(str, masks)), _mask_lookup(class_map, ignore))


def read_class_names(path: Path | str, where: str = "class names") -> tuple[str, ...]:
    """Class names from a ``classes.txt`` of ``<index> <name>`` lines (CamVid's) or of bare names, one a line.

    Raises:
        DataError: the file cannot be read or is not UTF-8 text; ``where`` names the dataset in the message.
    """
    text = read_text(path, where, "a class names file: one name a line, or '<value> <name>' lines")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    split = [line.split(maxsplit=1) for line in lines]
    if all(len(parts) == 2 and parts[0].isdigit() for parts in split):
        return tuple(name for _, name in sorted((int(i), name) for i, name in split))
    return tuple(lines)


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
        mask: the mask PNG's path, or the synthetic sample's index.
        lookup: ``(256,)`` int16: the class index of each raw mask value,
            :data:`IGNORE_INDEX` for ignored values, :data:`UNEXPECTED` for
            values that should not occur (shared by a dataset's examples).
    """

    mask: ImageRef
    lookup: np.ndarray

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


def _in_order(names: Sequence[str], limit: int = 20) -> str:
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
        f"but the dataset's {len(names)} classes are {_in_order(names)}",
        expected=f"the dataset's classes in its order ({len(names)} of them)",
        hint=f"write classes = {len(names)}{spelled}",
    )


def _task_count(task: TaskLabels) -> int | None:
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
    if task.kind == "detect":
        boxes = _synthetic_boxes(config.count, config.size, config.seed)
        if task.partial:
            names = tuple(task.classes) if isinstance(task.classes, tuple) else ()
            return _boxes_in_task_classes(boxes, SYNTHETIC_DETECT_CLASSES, names, where)
        check_dense_classes(task, SYNTHETIC_DETECT_CLASSES, where)
        annotated = np.ones(len(SYNTHETIC_DETECT_CLASSES), dtype=bool)
        return object_array([BoxTarget(b, c, annotated) for b, c in boxes])
    check_dense_classes(task, SYNTHETIC_SEGMENT_CLASSES, where)
    lookup = _value_lookup({value: value for value in range(len(SYNTHETIC_SEGMENT_CLASSES))}, ())
    return object_array([MaskTarget(index, lookup) for index in range(config.count)])


def _boxes_in_task_classes(
    found: Sequence[tuple[np.ndarray, np.ndarray]], own: Sequence[str], names: Sequence[str], where: str
) -> np.ndarray:
    """Each image's :class:`BoxTarget` over a joined task's ``names``, from boxes in the dataset's ``own`` classes.

    The dataset annotates the task classes it has; boxes of its other classes are dropped.

    Raises:
        DataError: the dataset has none of the task's classes.
    """
    annotated = np.array([name in own for name in names], dtype=bool)
    if not annotated.any():
        raise DataError(
            f"{where} labels none of the classes of the task that reads it: {_in_order(names)}",
            expected=f"a task class among its classes: {_in_order(own)}",
            hint="check the spelling of the task's classes, or take the dataset out of the task",
        )
    lookup = np.array([list(names).index(name) if name in names else -1 for name in own], dtype=np.int64)
    targets = []
    for boxes, classes in found:
        mapped = lookup[classes]
        keep = mapped >= 0
        targets.append(BoxTarget(boxes[keep], mapped[keep], annotated))
    return object_array(targets)


def _check_annotated(
    annotated: Sequence[str], categories: Sequence[str], names: Sequence[str], task: TaskLabels,
    config: CocoDataset, where: str,
) -> None:
    """Every class a coco dataset annotates for ``task`` must be a category of its file and a class of the task.

    With ``config.classes`` unset, a single dataset annotates all the task's
    classes; a joined task's dataset (``task.partial``) annotates those of its
    categories the task has, which are both by construction.
    """
    if config.classes is None and task.partial:
        return
    for name in annotated:
        if name not in categories:
            who = f"task '{task.task}' lists" if config.classes is None else "the dataset's classes list"
            raise DataError(
                f"{where}: {who} class '{name}', which is not a category of {config.annotations}",
                expected=f"one of its {len(categories)} categories: {listing(categories, limit=100)}",
                hint=did_you_mean(name, categories)
                or (
                    "fix the class name, or list the task classes this dataset annotates with classes = [...] "
                    "on the dataset (the others are then masked out of its images' losses)"
                    if config.classes is None
                    else "fix the class name, or remove it from the dataset's classes"
                ),
            )
        if name not in names:
            raise DataError(
                f"{where}: the dataset's classes list '{name}', which task '{task.task}' does not have",
                expected=f"one of the task's classes: {listing(names)}",
                hint=did_you_mean(name, names)
                or f"add '{name}' to the task's classes, or remove it from the dataset's",
            )


def _coco_task_targets(every: DetectionExamples, config: CocoDataset, task: TaskLabels, where: str) -> np.ndarray:
    """Each image's :class:`BoxTarget` for ``task``, from ``every`` (all categories, indexed in category-id order).

    For a task that learns from several datasets (``task.partial``) the
    dataset annotates the task classes among its categories (or its
    ``classes``, or its ``one_class``); the others are masked out of its images.
    """
    categories = every.class_names
    if task.partial and isinstance(task.classes, tuple):
        if config.one_class is not None:
            own: tuple[str, ...] = (config.one_class,)
            found = [(boxes, np.zeros(len(boxes), dtype=np.int64)) for boxes in every.boxes]
        else:
            own = categories if config.classes is None else tuple(config.classes)
            _check_annotated(own, categories, task.classes, task, config, where)
            position = np.array([own.index(name) if name in own else -1 for name in categories], dtype=np.int64)
            found = [(boxes[position[classes] >= 0], position[classes][position[classes] >= 0])
                     for boxes, classes in zip(every.boxes, every.classes)]
        return _boxes_in_task_classes(found, own, task.classes, where)
    if config.one_class is not None:
        check_dense_classes(task, (config.one_class,), where)
        one = np.array([True])
        return object_array([BoxTarget(boxes, np.zeros(len(boxes), dtype=np.int64), one) for boxes in every.boxes])
    if isinstance(task.classes, int) and task.classes != len(categories):
        raise DataError(
            f"{where}: task '{task.task}' has classes = {task.classes}, but {config.annotations} has "
            f"{len(categories)} categories",
            expected=f"its categories: {listing(categories, limit=100)}",
            hint=f"write classes = {len(categories)}, or list by name the categories the task learns",
        )
    names = categories if isinstance(task.classes, int) or not task.classes else tuple(task.classes)
    annotated = tuple(config.classes) if config.classes else names
    _check_annotated(annotated, categories, names, task, config, where)
    index = {name: i for i, name in enumerate(names)}
    lookup = np.array([index[name] if name in annotated else -1 for name in categories], dtype=np.int64)
    mask = np.array([name in annotated for name in names], dtype=bool)
    found = []
    for boxes, classes in zip(every.boxes, every.classes):
        mapped = lookup[classes]
        keep = mapped >= 0
        found.append(BoxTarget(boxes[keep], mapped[keep], mask))
    return object_array(found)


def _truth_lookup(categories: tuple[str, ...], config: CocoDataset, task: TaskLabels) -> np.ndarray:
    """``(K,)`` int64: the task class index of each category of the file, -1 for those the task does not learn here.

    The same choice :func:`_coco_task_targets` makes for the boxes training learns from.
    """
    names = tuple(task.classes) if isinstance(task.classes, tuple) and task.classes else categories
    if config.one_class is not None:
        return np.full(len(categories), names.index(config.one_class) if config.one_class in names else 0)
    annotated = set(config.classes) if config.classes is not None else set(names)
    return np.array([names.index(name) if name in names and name in annotated else -1 for name in categories],
                    dtype=np.int64)


def _with_truth(targets: np.ndarray, every: DetectionExamples, lookup: np.ndarray) -> np.ndarray:
    """``targets`` with each image's :class:`CocoTruth`, in the task's classes, attached."""
    return object_array([
        BoxTarget(target.boxes, target.classes, target.annotated, truth.select(lookup))
        for target, truth in zip(targets, every.truth)
    ])


def read_coco_dataset(config: CocoDataset, tasks: Sequence[TaskLabels]) -> Table:
    """A ``coco`` dataset for its detect tasks: images and each task's :class:`BoxTarget` per image.

    The file is read once; each task takes the categories it names. With
    ``keep_empty = false``, images with no box for any of the tasks are left out.
    """
    where = describe(config)
    every = read_coco(config.annotations, config.images)
    targets = {
        task.task: _with_truth(_coco_task_targets(every, config, task, where), every,
                               _truth_lookup(every.class_names, config, task))
        for task in tasks
    }
    kept = np.arange(len(every))
    if not config.keep_empty:
        kept = np.array(
            [i for i in range(len(every)) if any(len(found[i].boxes) for found in targets.values())], dtype=np.int64
        )
    if not len(kept):
        raise DataError(
            f"{where}: no image has a box of the tasks' classes",
            hint="check the task's classes against the file's categories, or write keep_empty = true",
        )
    return Table(
        images=[every.images[i] for i in kept.tolist()],
        labels={},
        spaces={},
        exact=True,
        parts=None,
        where=where,
        targets={task: found[kept] for task, found in targets.items()},
    )


def _value_lookup(values: Mapping[int, int], ignore: Sequence[int]) -> np.ndarray:
    lookup = np.full(256, UNEXPECTED, dtype=np.int16)
    for raw, index in values.items():
        lookup[int(raw)] = int(index)
    for raw in ignore:
        lookup[int(raw)] = IGNORE_INDEX
    return lookup


def _mask_classes(config: MasksDataset, where: str) -> tuple[tuple[str, ...] | None, dict[int, int] | None]:
    """The dataset's class names (``None``: the task names them) and ``{mask value: class}`` (``None``: identity)."""
    names: tuple[str, ...] | None = None
    if isinstance(config.classes, str):
        names = read_class_names(config.classes, where)
        if not names:
            raise DataError(f"{where}: the class names file {config.classes} is empty", expected="one name a line")
    elif config.classes is not None:
        names = tuple(config.classes)
    if config.class_map is not None:
        if names is not None and len(names) != len(config.class_map):
            raise DataError(
                f"{where}: class_map gives the mask values of {len(config.class_map)} classes, "
                f"but classes names {len(names)}: {_in_order(names)}",
                hint="name one class per class_map entry, in the same order",
            )
        return names, config.mask_values()
    if names is None:
        return None, None
    ignored = set(config.ignore)
    kept = [value for value in range(len(names)) if value not in ignored]
    return tuple(names[v] for v in kept), {value: index for index, value in enumerate(kept)}


def _mask_task_lookup(
    config: MasksDataset,
    task: TaskLabels,
    names: tuple[str, ...] | None,
    values: dict[int, int] | None,
    where: str,
) -> np.ndarray:
    if names is not None:
        check_dense_classes(task, names, where)
    elif values is not None:
        count = len(config.class_map or [])
        if _task_count(task) not in (None, count):
            raise DataError(
                f"{where}: segment task '{task.task}' has {_task_count(task)} classes, "
                f"but the dataset's class_map gives {count}",
                expected=f"classes = {count}, or {count} class names in class_map's order",
                hint=f"write classes = {count}, or add the missing classes to class_map",
            )
    else:
        count = _task_count(task)
        if count is None:
            raise DataError(
                f"{where}: neither the dataset nor segment task '{task.task}' names the classes",
                hint="write classes = [...] (or a classes.txt path) on the dataset, or classes = [...] on the task",
            )
        values = {value: value for value in range(min(count, IGNORE_INDEX))}
    return _value_lookup(values or {}, config.ignore)


def read_mask_dataset(config: MasksDataset, tasks: Sequence[TaskLabels]) -> Table:
    """A ``masks`` dataset for its segment tasks: images, and each task's :class:`MaskTarget` per image.

    ``split = given`` pairs ``images/<split>/`` with ``masks/<split>/``; a ratio
    split pairs ``images/`` with ``masks/``.
    """
    where = describe(config)
    images_root, masks_root = Path(config.images), Path(config.masks)
    for folder, what in ((images_root, "images"), (masks_root, "masks")):
        if not folder.is_dir():
            raise DataError(f"{where}: the {what} folder {folder} does not exist", expected=f"a folder of {what}")
    if config.split == "given":
        folders = given_folders(
            images_root, where, holding="the split's images, with its masks in the same subfolder of the masks folder",
            hint="write ratios, e.g. split = 0.8/0.2, when the images sit directly in the images folder",
        )
        pairs = {part: (folder, masks_root / folder.name) for part, folder in folders.items()}
    else:
        if (images_root / "train").is_dir():
            raise DataError(
                f"{where}: {images_root} has a train/ folder, but split = "
                + "/".join(f"{ratio:g}" for ratio in config.split)
                + " reads the images directly in it",
                hint="write split = given to use the dataset's own split",
            )
        pairs = {"": (images_root, masks_root)}
    images: list[ImageRef] = []
    masks: list[ImageRef] = []
    parts: dict[str, np.ndarray] = {}
    for part, (image_folder, mask_folder) in pairs.items():
        paired = read_masks(image_folder, mask_folder)
        start = len(images)
        images += paired.images
        masks += paired.masks
        parts[part] = np.arange(start, len(images))
    names, values = _mask_classes(config, where)
    targets = {}
    for task in tasks:
        lookup = _mask_task_lookup(config, task, names, values, where)
        targets[task.task] = object_array([MaskTarget(mask, lookup) for mask in masks])
    return Table(images, {}, {}, True, parts if config.split == "given" else None, where, targets)


def check_mask_size(mask: np.ndarray, size: tuple[int, int], mask_reference: object, image_reference: object) -> None:
    """Raise :class:`DataError` unless ``mask`` is ``size`` (width, height), its image's size."""
    if (mask.shape[1], mask.shape[0]) != tuple(size):
        raise DataError(
            f"the mask {mask_reference} is {mask.shape[1]}x{mask.shape[0]}, "
            f"its image {image_reference} {size[0]}x{size[1]}",
            expected="a mask the size of its image",
        )


#: Readers of the dataset kinds that carry boxes or masks only (``synthetic`` goes through :func:`synthetic_targets`).
DENSE_READERS = {"coco": read_coco_dataset, "masks": read_mask_dataset}


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
