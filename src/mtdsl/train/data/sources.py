"""What every dataset reader shares: the :class:`Table` it returns, and the helpers it reads files with.

A reader (one per dataset format, in :mod:`mtdsl.train.data.formats`) lists
every example of a dataset and, for each task that reads it, the labels the
example carries (a list of strings, so single- and multi-label sources look
alike) or, for detect and segment tasks, targets it made itself
(:attr:`Table.targets`). Turning labels into target tensors is
:mod:`mtdsl.train.data.labels`' job; splitting with ratios is :func:`ratio_split`.
The per-item helpers at the end (seeds, indices, unreadable images) are shared
by every dataset class.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mtdsl.errors import DataError, listing
from mtdsl.spec.data import DatasetConfig

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
VAL_FOLDERS = ("val", "valid")

ImageRef = str | int


class LabelRequest(Protocol):
    """What a reader needs of a task: its name and the label field it asked for (``None``: the default)."""

    task: str
    label: str | None


@dataclass(frozen=True)
class Table:
    """Every example of one dataset, before targets are made.

    Attributes:
        images: file paths, or indices of synthetic samples.
        labels: per task, each example's label strings; ``None`` where a
            manifest's cell holds its ``unknown`` marker (not labelled).
        spaces: per task, the labels in index order when the dataset defines
            them (class folders, a vocabulary, a synthetic field); else the sorted
            labels found.
        exact: whether ``spaces`` is the complete set of classes (folder,
            synthetic), so a task's class list must cover all of it.
        parts: the dataset's own split (example indices per split name), or
            ``None`` when a ratio split is to be drawn.
        where: how messages name the dataset.
        targets: per task, targets the reader made itself (detect and segment
            tasks, whose targets depend on the task's classes; see
            :class:`mtdsl.train.data.datasets.Examples`).
    """

    images: list[ImageRef]
    labels: dict[str, list[list[str] | None]]
    spaces: dict[str, tuple[str, ...]]
    exact: bool
    parts: dict[str, np.ndarray] | None
    where: str
    targets: dict[str, np.ndarray] = field(default_factory=dict)


def describe(config: DatasetConfig) -> str:
    """``folder dataset 'beans' (data/beans/images)`` for messages."""
    location = next((getattr(config, key) for key in ("root", "path", "data", "annotations", "images")
                     if getattr(config, key, None)), None)
    name = f" '{config.name}'" if config.name else ""
    return f"{config.kind} dataset{name}" + (f" ({location})" if location else "")


# ------------------------------------------------------------------ splits


def ratio_split(count: int, ratios: Sequence[float], seed: int) -> dict[str, np.ndarray]:
    """Example indices of ``train``, ``val`` (and ``test`` for three ratios), drawn from ``seed``.

    The parts are disjoint, cover every example and are sorted; sizes are the
    rounded cumulative ratios, so ``0.65/0.10/0.25`` of 100 gives 65/10/25.

    >>> {name: len(part) for name, part in ratio_split(10, [0.7, 0.3], seed=0).items()}
    {'train': 7, 'val': 3}
    """
    order = np.random.default_rng(seed).permutation(count)
    bounds = np.rint(np.cumsum(ratios) * count).astype(int)
    bounds[-1] = count
    names = ("train", "val", "test")[: len(ratios)]
    starts = np.concatenate([[0], bounds[:-1]])
    return {name: np.sort(order[start:end]) for name, start, end in zip(names, starts, bounds)}


def photo_split(images: Sequence[str], ratios: Sequence[float], seed: int) -> dict[str, np.ndarray]:
    """:func:`ratio_split` by photo: a photo's part depends on its folder, the ratios and the seed alone.

    Datasets that label the same photos (a CSV of breeds, a COCO file of head
    boxes and a folder of masks, all over one ``images/`` folder) must put each
    photo in the same part: otherwise a multi-task model learns one task on
    another task's test photos, and its numbers are not the single-task
    model's. So the split is drawn over every image file of the folders the
    dataset's images are in (sorted), not over the dataset's own list, and each
    example takes its photo's part: the same in a multi-task spec and in each
    of its single-task specs. A dataset that labels every photo of its folders
    gets the ratios exactly (as :func:`ratio_split`); one that labels some gets
    about them.

    >>> import tempfile; folder = Path(tempfile.mkdtemp())
    >>> for i in range(10): (folder / f"{i}.jpg").touch()
    >>> every = [str(folder / f"{i}.jpg") for i in range(10)]
    >>> whole, some = photo_split(every, [0.6, 0.4], 0), photo_split(every[::2], [0.6, 0.4], 0)
    >>> [every[::2][i] in [every[j] for j in whole[part]] for part in some for i in some[part]]
    [True, True, True, True, True]
    """
    keys = [os.path.normpath(image) for image in images]
    photos = set(keys)
    for folder in {os.path.dirname(key) for key in keys}:
        if os.path.isdir(folder):
            photos.update(os.path.normpath(path) for path in image_files(Path(folder), folder))
    universe = sorted(photos)
    part_of: dict[str, str] = {}
    for name, indices in ratio_split(len(universe), ratios, seed).items():
        part_of.update((universe[index], name) for index in indices)
    names = ("train", "val", "test")[: len(ratios)]
    return {name: np.array([i for i, key in enumerate(keys) if part_of[key] == name], dtype=np.int64)
            for name in names}


# ------------------------------------------------------------------ folders


def image_files(folder: Path, where: str) -> list[str]:
    """The image files directly in ``folder`` (by suffix; hidden files left out), sorted.

    Raises:
        DataError: an entry is a symbolic link that cannot be followed (it loops), naming it.
    """
    return sorted(
        entry.path
        for entry in os.scandir(folder)
        if not entry.name.startswith(".") and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES
        and _followed(entry, where).is_file()
    )


def subfolders(folder: Path, where: str) -> list[str]:
    return sorted(
        entry.name
        for entry in os.scandir(folder)
        if not entry.name.startswith(".") and _followed(entry, where).is_dir()
    )


def _followed(entry: os.DirEntry[str], where: str) -> os.DirEntry[str]:
    """``entry``, once a ``stat`` through its links has worked (a missing link target is left to the caller).

    A link to itself (or a ring of links) fails every ``stat`` with ELOOP. Skipping it would
    silently train (or predict) on fewer images than the folder shows, so it is an error.
    """
    try:
        entry.is_dir()
    except OSError as error:
        raise looping_link(entry.path, where, error) from None
    return entry


def looping_link(path: str | Path, where: str, error: OSError) -> DataError:
    """The error for a path whose links cannot be followed: a symbolic link that loops, or one that cannot be read."""
    what = "is a symbolic link that loops" if error.errno == errno.ELOOP else "cannot be read"
    return DataError(
        f"{where}: {path} {what} ({error.strerror or error})",
        expected="image files, or symbolic links to them",
        hint=f"remove the link (rm {path}) or point it at an image file or folder",
    )


def given_folders(
    root: Path,
    where: str,
    holding: str = "one folder per class",
    hint: str = (
        "write a ratio instead, e.g. split = 0.65/0.10/0.25, when the class folders sit directly under the root"
    ),
) -> dict[str, Path]:
    """The ``train``, ``val`` (from ``val/`` or ``valid/``) and, when present, ``test`` folders of ``root``."""
    found = subfolders(root, where)
    val = next((root / name for name in VAL_FOLDERS if name in found), None)
    if "train" not in found or val is None:
        raise DataError(
            f"{where}: split = given needs {root}/train/ and {root}/val/ (or valid/), found "
            + (listing(found) if found else "no folders"),
            expected=f"train/, val/ (or valid/) and optionally test/, each holding {holding}",
            hint=hint,
        )
    parts = {"train": root / "train", "val": val}
    if "test" in found:
        parts["test"] = root / "test"
    return parts



# ------------------------------------------------------------------ files


def read_text(path: str | Path, where: str, expected: str) -> str:
    """The text of a file a dataset names (manifest, vocabulary, class names, COCO annotations).

    Every such file is read as UTF-8 (a byte-order mark is dropped), whatever
    the machine's locale, so a dataset reads the same everywhere.

    Raises:
        DataError: the file cannot be read, or is not UTF-8 text (naming the
            first bad byte's line, and how to convert the file).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"{where}: cannot read {path} ({error.strerror or error})", expected=expected) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(
            f"{where}: {path} is not UTF-8 text: byte 0x{data[error.start]:02x} on line {line} "
            f"(offset {error.start}) is not valid UTF-8",
            expected=f"{expected}, saved as UTF-8",
            hint=f"save {Path(path).name} as UTF-8, e.g. with iconv -f latin1 -t utf-8 "
            "(or your editor's 'save with encoding')",
        ) from None


def check_images_exist(paths: Sequence[str], where: str, *, expected: str, hint: str) -> None:
    """Raise one :class:`DataError` that counts the listed image files that are missing."""
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise DataError(
            f"{where}: {len(missing)} of {len(paths)} image files do not exist, e.g. {missing[0]}",
            expected=expected,
            hint=hint,
        )


# ------------------------------------------------------------------- items


_MASK64 = 2**64 - 1


def _mix64(value: int) -> int:
    """SplitMix64's finaliser: a bijection of 64-bit integers in which every input bit flips half the output bits."""
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def item_seed(seed: int, index: int) -> int:
    """The augmentation seed of example ``index`` in a batch drawn with ``seed``: a 64-bit hash of the pair.

    Mixing in the index gives each image its own crop even when a batch shares one seed.
    Pure integer arithmetic: numpy's ``SeedSequence`` cost 0.4 ms an image, a third of a decode.

    >>> item_seed(0, 0) != item_seed(0, 1) != item_seed(1, 0)
    True
    """
    return _mix64((_mix64(seed & _MASK64) + 0x9E3779B97F4A7C15 * (index + 1)) & _MASK64)


def item_index(item: tuple[int, int] | int, length: int) -> tuple[int, int]:
    """``(example index, augmentation seed)`` from a dataset item; a bare int means seed 0."""
    index, seed = item if isinstance(item, tuple) else (item, 0)
    index = int(index)
    if not -length <= index < length:
        raise IndexError(f"example {index} is out of range for a split of {length}")
    return index % length, seed


def _unreadable(message: str) -> DataError:
    return DataError(
        message,
        expected="an image file Pillow can open (JPEG, PNG, …)",
        hint="replace or delete the file, or write on_corrupt = skip in the train block to skip unreadable images",
    )


def unreadable_image(reference: object, error: object) -> DataError:
    return _unreadable(f"cannot read the image {reference}: {error}")


def raise_if_unreadable(batch: dict[str, Any]) -> dict[str, Any]:
    """Raise, in the main process, the error a loader worker met while reading an image."""
    if "unreadable" in batch:
        raise _unreadable(batch["unreadable"])
    return batch
