"""The ``masks`` format: images paired by file stem with single-channel PNGs of class indices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtdsl.errors import DataError
from mtdsl.spec.data import MasksDataset
from mtdsl.train.data.box_mask_targets import (
    IGNORE_INDEX,
    MaskTarget,
    check_dense_classes,
    in_order,
    object_array,
    partial_mask_lookup,
    task_count,
    value_lookup,
)
from mtdsl.train.data.formats.registry import READERS
from mtdsl.train.data.sources import ImageRef, Table, describe, given_folders, image_files, read_text
from mtdsl.train.data.tasks import TaskLabels

__all__ = ["MaskExamples", "read_class_names", "read_mask_dataset", "read_masks"]


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
                f"but classes names {len(names)}: {in_order(names)}",
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
        mapped = len(config.class_map or [])
        if task_count(task) not in (None, mapped):
            raise DataError(
                f"{where}: segment task '{task.task}' has {task_count(task)} classes, "
                f"but the dataset's class_map gives {mapped}",
                expected=f"classes = {mapped}, or {mapped} class names in class_map's order",
                hint=f"write classes = {mapped}, or add the missing classes to class_map",
            )
    else:
        known = task_count(task)
        if known is None:
            raise DataError(
                f"{where}: neither the dataset nor segment task '{task.task}' names the classes",
                hint="write classes = [...] (or a classes.txt path) on the dataset, or classes = [...] on the task",
            )
        values = {value: value for value in range(min(known, IGNORE_INDEX))}
    return value_lookup(values or {}, config.ignore)


@READERS.register("masks")
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
        annotated: np.ndarray | None = None
        if task.partial and isinstance(task.classes, tuple) and names is not None and values is not None:
            lookup, annotated = partial_mask_lookup(names, values, config.ignore, task.classes, where)
        else:  # the dataset's values are the task's classes
            lookup = _mask_task_lookup(config, task, names, values, where)
            if task.partial:
                annotated = np.ones(task_count(task) or 0, dtype=bool)
        targets[task.task] = object_array([MaskTarget(mask, lookup, annotated) for mask in masks])
    return Table(images, {}, {}, True, parts if config.split == "given" else None, where, targets)
