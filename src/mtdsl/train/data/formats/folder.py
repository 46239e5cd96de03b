"""The ``folder`` format: images in one subfolder per class (``ROOT/CLASS/*.jpg``); a task's labels are ``[CLASS]``."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtdsl.errors import DataError, DataWarning, listing
from mtdsl.spec.data import FolderDataset
from mtdsl.train.data.formats.registry import READERS
from mtdsl.train.data.sources import (
    IMAGE_SUFFIXES,
    VAL_FOLDERS,
    ImageRef,
    LabelRequest,
    Table,
    describe,
    given_folders,
    image_files,
    subfolders,
)


def _class_images(folder: Path, where: str, part: str) -> dict[str, list[str]]:
    """The image files of each class folder under ``folder`` (``part``: the split it holds, ``""`` for all).

    Raises:
        DataError: there are no class folders, or none holds an image.

    Warns:
        DataWarning: a class folder holds no image.
    """
    classes = subfolders(folder, where)
    if not classes:
        raise DataError(
            f"{where}: {folder} has no class folders",
            expected=f"one folder per class under {folder}, each holding that class' images",
        )
    images = {name: image_files(folder / name, where) for name in classes}
    if not any(images.values()):
        raise DataError(
            f"{where}: no images in the class folders of {folder} ({listing(classes)})",
            expected=f"image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in each class folder",
        )
    for name, files in images.items():
        if not files:
            # A class with no images still trains (it is never the answer), which is rarely what was meant.
            warnings.warn(
                f"{where}: the class folder {folder / name} holds no images, so class '{name}' has no "
                f"{'examples' if part == '' else part + ' examples'}; add its images, or delete the folder "
                "if the class is not to be learned",
                DataWarning,
                stacklevel=2,
            )
    return images


@READERS.register("folder")
def read_folder(config: FolderDataset, tasks: Sequence[LabelRequest]) -> Table:
    """Images in one folder per class, under ``root`` or under its ``train/``, ``val/`` and ``test/``."""
    where = describe(config)
    root = Path(config.root)
    if not root.is_dir():
        raise DataError(f"{where}: the folder {root} does not exist", expected="a folder with one subfolder per class")
    for task in tasks:
        if task.label is not None:
            raise DataError(
                f"{where} has one label per image, its class folder; task '{task.task}' asks for label = {task.label}",
                hint=f"remove 'label' from task '{task.task}'",
            )
    if config.split == "given":
        folders = given_folders(root, where)
    else:
        if {"train"} <= set(subfolders(root, where)) and set(VAL_FOLDERS) & set(subfolders(root, where)):
            raise DataError(
                f"{where} has train/ and val/ folders, but split = {'/'.join(f'{r:g}' for r in config.split)} "
                "would read them as classes",
                hint="write split = given to use the dataset's own split",
            )
        folders = {"": root}

    images: list[ImageRef] = []
    labels: list[list[str] | None] = []
    parts: dict[str, np.ndarray] = {}
    classes: set[str] = set()
    for part, folder in folders.items():
        start = len(images)
        for name, files in _class_images(folder, where, part).items():
            classes.add(name)
            images += files
            labels += [[name]] * len(files)
        parts[part] = np.arange(start, len(images))
    space = tuple(sorted(classes))
    return Table(
        images=images,
        labels={task.task: labels for task in tasks},
        spaces={task.task: space for task in tasks},
        exact=True,
        parts=parts if config.split == "given" else None,
        where=where,
    )
