"""The training data layer: what each task reads, its splits, and a torch ``Dataset``.

``read_splits`` reads a dataset once for all the tasks that use it and turns
each task's labels into targets; ``ImageDataset`` serves one split, with
augmentation that depends only on the seed it is handed with each index.

>>> from mtdsl.spec.data import SyntheticDataset
>>> config = SyntheticDataset(count=20, size=32, seed=0, split=[0.75, 0.25])
>>> tasks = [TaskLabels("shape", "classify", 3), TaskLabels("big", "binary", None, label="large")]
>>> splits = read_splits(config, tasks)
>>> {name: len(examples) for name, examples in splits.items()}
{'train': 15, 'val': 5}
>>> dataset = ImageDataset(splits["train"], tasks, image_size=(32, 32), mean=(0.5,) * 3, std=(0.5,) * 3, train=True)
>>> item = dataset[(0, 7)]
>>> item["image"].shape, item["targets"]["shape"].dtype, item["targets"]["big"].dtype
(torch.Size([3, 32, 32]), torch.int64, torch.float32)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, get_worker_info

from mtdsl.errors import DataError, did_you_mean, listing
from mtdsl.spec.data import DatasetConfig, SyntheticDataset
from mtdsl.train.sources import ImageRef, Table, ratio_split, read_table
from mtdsl.train.synthetic import synthetic_sample
from mtdsl.train.transforms import IMAGE_ERRORS, ImageTransform, load_image, normalization

if TYPE_CHECKING:
    from mtdsl.spec.document import Spec

__all__ = ["Examples", "ImageDataset", "TaskLabels", "collate", "normalization", "read_splits", "task_labels"]

READABLE_KINDS = ("classify", "binary", "multilabel")

#: The random crop for synthetic shapes is mild, so ``large`` still describes what the model sees.
SYNTHETIC_CROP = {"scale": (0.8, 1.0), "ratio": (0.9, 1.1)}


@dataclass(frozen=True)
class TaskLabels:
    """What one task reads from a dataset.

    Attributes:
        task: the task's name.
        kind: ``classify``, ``binary`` or ``multilabel``.
        classes: the class names in index order; an int when the spec wrote
            ``classes = N`` (the dataset's labels then name them); ``None`` for binary.
        label: the dataset field to read (``TaskTraining.label``); ``None`` for the default.
        positive: the label that counts as "yes" for a binary task.
    """

    task: str
    kind: str
    classes: tuple[str, ...] | int | None
    label: str | None = None
    positive: str | None = None


def _declared_classes(classes: list[str] | None) -> tuple[str, ...] | int | None:
    # The spec turns ``classes = N`` into the names "0" … "N-1"; reading them back as a count lets the
    # dataset's own label names fill in.
    if classes is None:
        return None
    if classes == [str(i) for i in range(len(classes))]:
        return len(classes)
    return tuple(classes)


def task_labels(spec: Spec, task_names: Iterable[str] | None = None) -> list[TaskLabels]:
    """What each named task (every task when ``None``) reads, from a validated spec."""
    names = list(spec.model.tasks) if task_names is None else list(task_names)
    found = []
    for name in names:
        if name not in spec.model.tasks:
            raise DataError(
                f"no task '{name}' in the spec",
                expected=f"a task: {listing(spec.model.tasks)}",
                hint=did_you_mean(name, spec.model.tasks),
            )
        task, training = spec.model.tasks[name], spec.train.tasks[name]
        if task.kind not in READABLE_KINDS:
            raise DataError(
                f"task '{name}' is a {task.kind} task; this version of mtdsl reads data "
                f"for {', '.join(READABLE_KINDS)} tasks only",
                spec.span("task", name),
                hint="train the other tasks of the spec without it for now",
            )
        classes = None if task.kind == "binary" else _declared_classes(task.classes)
        found.append(TaskLabels(name, task.kind, classes, training.label, training.positive))
    return found


@dataclass(frozen=True, eq=False)
class Examples:
    """One split of a dataset: per example its image and, per task, its target.

    Attributes:
        images: file paths, or indices of synthetic samples.
        targets: per task, every example's target: ``(N,)`` int64 class
            indices (classify), ``(N,)`` float32 0/1 (binary) or ``(N, C)``
            float32 multi-hot (multilabel).
        synthetic: the generator config when ``images`` are synthetic indices.
    """

    images: tuple[ImageRef, ...]
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    synthetic: SyntheticDataset | None = None

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Examples:
        """The examples at ``indices``, in that order."""
        picked = np.asarray(indices, dtype=np.int64)
        return Examples(
            tuple(self.images[i] for i in picked.tolist()),
            {task: values[picked] for task, values in self.targets.items()},
            self.synthetic,
        )


# ---------------------------------------------------------------- targets


def _resolve_classes(task: TaskLabels, space: tuple[str, ...], exact: bool, where: str) -> tuple[str, ...]:
    """The task's class names in index order, checked against the labels the dataset has."""
    if isinstance(task.classes, int):
        if len(space) != task.classes:
            raise DataError(
                f"{where}: task '{task.task}' has classes = {task.classes}, "
                f"but the dataset has {len(space)} labels: {listing(space)}",
                hint=f"write classes = {len(space)}, or list the class names the task should learn",
            )
        return space
    classes = tuple(task.classes or ())
    unknown = [name for name in classes if name not in space]
    if unknown:
        raise DataError(
            f"{where}: task '{task.task}' lists class '{unknown[0]}', which the dataset does not have",
            expected=f"its labels: {listing(space)}",
            hint=did_you_mean(unknown[0], space) or "fix the class name, or point the task at another dataset or label",
        )
    extra = [name for name in space if name not in classes]
    if exact and extra:
        raise DataError(
            f"{where}: the dataset has labels that task '{task.task}' does not list: {listing(extra)}",
            expected=f"classes naming all {len(space)} labels: {listing(space)}",
            hint=f"add them to the task's classes (or write classes = {len(space)}), or remove their images",
        )
    return classes


def _classify_targets(task: TaskLabels, table: Table, rows: list[list[str]]) -> np.ndarray:
    classes = _resolve_classes(task, table.spaces[task.task], table.exact, table.where)
    index = {name: i for i, name in enumerate(classes)}
    targets = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        if len(row) != 1:
            raise DataError(
                f"{table.where}: {table.images[i]} has {len(row)} labels ({', '.join(row) or 'none'}), "
                f"but classify task '{task.task}' needs exactly one",
                hint="make the task multilabel, or give every image one label",
            )
        if row[0] not in index:
            raise DataError(
                f"{table.where}: label '{row[0]}' of {table.images[i]} is not a class of task '{task.task}'",
                expected=f"one of its classes: {listing(classes)}",
                hint=f"add '{row[0]}' to the task's classes, or drop the image from the dataset",
            )
        targets[i] = index[row[0]]
    return targets


def _binary_targets(task: TaskLabels, table: Table, rows: list[list[str]]) -> np.ndarray:
    space = table.spaces[task.task]
    positive = task.positive
    if positive is None:
        if not set(space) <= {"0", "1"}:
            raise DataError(
                f"{table.where}: binary task '{task.task}' does not say which label counts as yes",
                expected=f"positive = one of {listing(space)}",
                hint=f'add positive = "{space[0] if space else "…"}" to the task',
            )
        positive = "1"
    elif positive not in space:
        raise DataError(
            f"{table.where}: task '{task.task}' has positive = \"{positive}\", a label the dataset does not have",
            expected=f"one of its labels: {listing(space)}",
            hint=did_you_mean(positive, space) or "fix the label, or point the task at another label with label = …",
        )
    return np.array([positive in row for row in rows], dtype=np.float32)


def _multilabel_targets(task: TaskLabels, table: Table, rows: list[list[str]]) -> np.ndarray:
    classes = _resolve_classes(task, table.spaces[task.task], False, table.where)
    index = {name: i for i, name in enumerate(classes)}
    targets = np.zeros((len(rows), len(classes)), dtype=np.float32)
    for i, row in enumerate(rows):
        for label in row:
            if label in index:
                targets[i, index[label]] = 1.0
    return targets


ENCODERS = {"classify": _classify_targets, "binary": _binary_targets, "multilabel": _multilabel_targets}


def encode_targets(task: TaskLabels, table: Table) -> np.ndarray:
    """Every example's target for ``task`` (see :class:`Examples` for shapes and dtypes)."""
    encoder = ENCODERS.get(task.kind)
    if encoder is None:
        raise DataError(
            f"task '{task.task}' is a {task.kind} task; data can be read for {', '.join(ENCODERS)} tasks only"
        )
    return encoder(task, table, table.labels[task.task])


def read_splits(dataset: DatasetConfig, tasks: Sequence[TaskLabels]) -> dict[str, Examples]:
    """Read ``dataset`` once for ``tasks`` and split it.

    Returns:
        ``train`` and ``val`` examples, and ``test`` when the dataset has one
        (a ``test/`` folder, or a third ratio). Ratio splits are drawn from the
        dataset's ``seed``.

    Raises:
        DataError: missing files or folders, labels that do not fit a task's classes.
    """
    table = read_table(dataset, tasks)
    targets = {task.task: encode_targets(task, table) for task in tasks}
    parts = table.parts
    if parts is None:
        parts = ratio_split(len(table.images), dataset.split, dataset.seed)  # type: ignore[attr-defined]
    whole = Examples(tuple(table.images), targets, dataset if isinstance(dataset, SyntheticDataset) else None)
    return {name: whole.subset(indices) for name, indices in parts.items()}


# ---------------------------------------------------------------- dataset


def _item_seed(seed: int, index: int) -> int:
    # Mixing in the index gives each image its own crop even when a batch shares one seed.
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


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


def item_index(item: tuple[int, int] | int, length: int) -> tuple[int, int]:
    """``(example index, augmentation seed)`` from a dataset item; a bare int means seed 0."""
    index, seed = item if isinstance(item, tuple) else (item, 0)
    index = int(index)
    if not -length <= index < length:
        raise IndexError(f"example {index} is out of range for a split of {length}")
    return index % length, seed


class ImageDataset(Dataset):
    """One split as a torch ``Dataset`` of ``{"image", "targets", "index"}`` dicts.

    Items are ``(example index, augmentation seed)`` pairs (a bare int means
    seed 0); the crop and flip come from that pair alone.

    Args:
        examples: the split.
        tasks: the tasks whose targets each item carries.
        image_size: output (height, width).
        mean: normalisation mean per channel, e.g. from :func:`normalization`.
        std: normalisation std per channel.
        train: augment (random resized crop and flip) or not (resize and centre crop).
        on_corrupt: ``"error"`` raises :class:`DataError` on an unreadable
            image, ``"skip"`` returns ``None`` for it (``collate`` drops it).
        synthetic: the generator config for synthetic examples (default: the one in ``examples``).
    """

    def __init__(
        self,
        examples: Examples,
        tasks: Sequence[TaskLabels],
        *,
        image_size: tuple[int, int],
        mean: tuple[float, ...],
        std: tuple[float, ...],
        train: bool,
        on_corrupt: str = "error",
        synthetic: SyntheticDataset | None = None,
    ) -> None:
        if on_corrupt not in ("error", "skip"):
            raise ValueError(f"on_corrupt must be 'error' or 'skip', got {on_corrupt!r}")
        missing = [task.task for task in tasks if task.task not in examples.targets]
        if missing:
            raise ValueError(
                f"the examples have no targets for task(s) {', '.join(missing)}; they hold {listing(examples.targets)}"
            )
        self.examples = examples
        self.tasks = tuple(tasks)
        self.on_corrupt = on_corrupt
        self.synthetic = synthetic or examples.synthetic
        if self.synthetic is None and any(isinstance(image, int) for image in examples.images):
            raise ValueError("synthetic examples need their SyntheticDataset config (pass synthetic=...)")
        crop: dict[str, Any] = SYNTHETIC_CROP if self.synthetic is not None else {}
        size = (int(image_size[0]), int(image_size[1]))
        self.transform = ImageTransform(size, tuple(mean), tuple(std), train, **crop)
        self._targets = {task.task: torch.from_numpy(examples.targets[task.task]) for task in self.tasks}

    def __len__(self) -> int:
        return len(self.examples)

    def targets(self, task: str) -> torch.Tensor:
        """Every example's target for ``task``, stacked, without opening any image."""
        if task not in self._targets:
            raise KeyError(f"no task '{task}' in this dataset; it serves {listing(self._targets)}")
        return self._targets[task].clone()

    def _image(self, reference: ImageRef) -> Image.Image | None:
        if isinstance(reference, int):
            assert self.synthetic is not None
            return Image.fromarray(synthetic_sample(reference, self.synthetic.size, self.synthetic.seed).image)
        try:
            return load_image(reference, draft=self.transform.draft_size())
        except IMAGE_ERRORS as error:
            if self.on_corrupt == "skip":
                return None
            raise unreadable_image(reference, error) from None

    def __getitem__(self, item: tuple[int, int] | int) -> dict[str, Any] | None:
        index, seed = item_index(item, len(self))
        try:
            image = self._image(self.examples.images[index])
        except DataError as error:
            if get_worker_info() is None:
                raise
            # torch re-raises worker errors wrapped in a traceback; the main process raises this one cleanly.
            return {"unreadable": error.message}
        if image is None:
            return None
        return {
            "image": self.transform(image, _item_seed(int(seed), index)),
            "targets": {task: values[index].clone() for task, values in self._targets.items()},
            "index": index,
        }


def collate(items: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Stack items into a batch, dropping the ``None`` of skipped images.

    Returns:
        ``{"image": (N, C, H, W), "targets": {task: (N, …)}, "index": (N,) int64,
        "skipped": int}``. When every item was skipped, ``N`` is 0: ``image`` is an
        empty ``(0,)`` float tensor, ``targets`` is ``{}`` and ``index`` is empty,
        so check ``batch["index"].numel() == 0`` before using it.
    """
    for item in items:
        if item is not None and "unreadable" in item:
            return {"unreadable": item["unreadable"]}
    kept = [item for item in items if item is not None]
    skipped = len(items) - len(kept)
    if not kept:
        return {"image": torch.empty(0), "targets": {}, "index": torch.empty(0, dtype=torch.long), "skipped": skipped}
    return {
        "image": torch.stack([item["image"] for item in kept]),
        "targets": {task: torch.stack([item["targets"][task] for item in kept]) for task in kept[0]["targets"]},
        "index": torch.tensor([item["index"] for item in kept], dtype=torch.long),
        "skipped": skipped,
    }
