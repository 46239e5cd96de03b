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

Detect and segment tasks ride in the same items: when a stream has one, the
image is letterboxed (boxes and masks move with its pixels) instead of cropped.

>>> tasks = [TaskLabels("shape", "classify", 3), TaskLabels("box", "detect", ("circle", "square", "triangle")),
...          TaskLabels("mask", "segment", ("background", "circle", "square", "triangle"))]
>>> dataset = ImageDataset(read_splits(config, tasks)["train"], tasks, image_size=(32, 32),
...                        mean=(0.5,) * 3, std=(0.5,) * 3, train=True)
>>> batch = collate([dataset[(0, 7)], dataset[(1, 7)]])
>>> [tuple(b.shape) for b in batch["targets"]["box"]["boxes"]], tuple(batch["targets"]["mask"].shape)
([(1, 4), (1, 4)], (2, 32, 32))
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from mtdsl.errors import DataError, listing
from mtdsl.spec.augment import DEFAULT_LABELS, DEFAULT_SYNTHETIC_LABELS, AugmentConfig
from mtdsl.spec.data import RESIZE_POLICIES, DatasetConfig, SyntheticDataset, unserved
from mtdsl.train.data.box_mask_targets import (
    BlankMask,
    BoxTarget,
    MaskSource,
    MaskTarget,
    check_mask_size,
    read_mask,
    task_count,
)
from mtdsl.train.data.decode import read_rgb
from mtdsl.train.data.examples import Examples, join_datasets, join_examples
from mtdsl.train.data.formats import read_table
from mtdsl.train.data.labels import encode_targets
from mtdsl.train.data.letterbox import Letterbox, Letterboxed, open_rgb
from mtdsl.train.data.point_targets import PointTarget, flip_order
from mtdsl.train.data.resize import Resize, normalization
from mtdsl.train.data.sources import (
    ImageRef,
    item_index,
    item_seed,
    photo_split,
    raise_if_unreadable,
    ratio_split,
    unreadable_image,
)
from mtdsl.train.data.synthetic import synthetic_sample
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.data.transforms import IMAGE_ERRORS, ImageTransform

__all__ = [
    "Examples",
    "ImageDataset",
    "collate",
    "item_index",
    "join_datasets",
    "join_examples",
    "normalization",
    "raise_if_unreadable",
    "read_splits",
    "unreadable_image",
]



def check_sources(dataset: DatasetConfig, tasks: Sequence[TaskLabels]) -> None:
    """Raise :class:`DataError` when ``dataset``'s format cannot serve one of ``tasks`` (a detect task on a folder, …).

    A spec never gets here with such a pair (:func:`mtdsl.spec.data.unserved`
    refuses it when the spec is checked); this guards direct calls.
    """
    for task in tasks:
        problem = unserved(dataset, dataset.name or dataset.kind, task.task, task.kind)
        if problem is not None:
            raise DataError(problem.message, expected=problem.expected, hint=problem.hint)


class _RatioSplit(Protocol):
    split: list[float]
    seed: int


def read_splits(dataset: DatasetConfig, tasks: Sequence[TaskLabels]) -> dict[str, Examples]:
    """Read ``dataset`` once for ``tasks`` and split it.

    Returns:
        ``train`` and ``val`` examples, and ``test`` when the dataset has one
        (a ``test/`` folder, or a third ratio). Ratio splits are drawn from the
        dataset's ``seed``.

    Raises:
        DataError: missing files or folders, a task the dataset cannot serve
            (a classify task on a coco dataset, …), labels or classes that do
            not fit a task's classes.
    """
    check_sources(dataset, tasks)
    table = read_table(dataset, tasks)
    targets = {
        task.task: encode_targets(task, table) if task.learns_from == "labels" else table.targets[task.task]
        for task in tasks
    }
    parts = table.parts
    if parts is None:  # a ratio split: readers give a "given" split as table.parts
        config = cast(_RatioSplit, dataset)  # every config that can draw a ratio split has both fields
        if isinstance(dataset, SyntheticDataset):
            parts = ratio_split(len(table.images), config.split, config.seed)
        else:  # files: by photo, so datasets labelling the same photos split them alike
            parts = photo_split([str(image) for image in table.images], config.split, config.seed)
    whole = Examples(tuple(table.images), targets, dataset if isinstance(dataset, SyntheticDataset) else None)
    return {name: whole.subset(indices) for name, indices in parts.items()}


# ---------------------------------------------------------------- dataset


class ImageDataset(Dataset):
    """One split as a torch ``Dataset`` of ``{"image", "targets", "index"}`` dicts.

    Items are ``(example index, augmentation seed)`` pairs (a bare int means
    seed 0); the augmentation comes from that pair alone.

    How a picture becomes the input is ``fit`` (a dataset's ``resize``). With
    image-label tasks only (classify, binary, multilabel) it is ``crop`` by
    default: the image goes through the ``augment`` ops when training (default:
    a random resized crop and a flip), then a resize and centre crop. When a
    detect or segment task is among ``tasks`` it is ``letterbox``: every task's
    targets come through a :class:`~mtdsl.train.data.letterbox.Letterbox`
    (aspect-preserving resize to the square ``image_size``, padding at the
    bottom/right, the ``augment`` ops when training, default a flip), so boxes
    and masks stay on their pixels; ``squash`` is the same letterbox stretched
    to the whole square. Image-label tasks alone may be letterboxed or squashed
    too (then their default ops are the crop and flip, zooming in place).
    ``item["targets"][task]`` is then:

    * classify/binary/multilabel: as in :class:`Examples` (one row);
    * detect: ``{"boxes": (K, 4) float32 (x0, y0, x1, y1) in input pixels,
      "classes": (K,) int64, "annotated": (C,) bool, "original": the image's
      ground truth in its own pixels and the letterbox's scale}``
      (:meth:`~mtdsl.train.data.box_mask_targets.BoxTarget.original`, what evaluation scores against);
    * segment: ``(S, S)`` int64 class indices,
      :data:`~mtdsl.train.data.box_mask_targets.IGNORE_INDEX` on ignored values and padding;
      for a task that joins datasets, ``{"mask": (S, S) int64, "annotated": (C,) bool}``
      (the classes the example's dataset labels);
    * a task of named points (keypoints): ``{"points": (K, 2) float32 (x, y) in input pixels,
      "labelled": (K,) bool (unlabelled or moved off the picture: no loss), "canvas": (2,) the input's
      (width, height), what the heatmaps cover, "original": the image's
      instances in its own pixels}`` (:meth:`~mtdsl.train.data.point_targets.PointTarget.original`).

    Args:
        examples: the split.
        tasks: the tasks whose targets each item carries.
        image_size: output (height, width); square when a task is detect or segment.
        mean: normalisation mean per channel, e.g. from :func:`normalization`.
        std: normalisation std per channel.
        train: augment or not.
        on_corrupt: ``"error"`` raises :class:`DataError` on an unreadable
            image or mask, ``"skip"`` returns ``None`` for it (``collate`` drops it).
        synthetic: the generator config for synthetic examples (default: the one in ``examples``).
        augment: the training ops (:mod:`mtdsl.spec.augment`); ``None``: the default for the tasks.
        resize: interpolation and evaluation crop of image-label tasks
            (:func:`~mtdsl.train.data.resize.pretrained_resize`).
        fit: ``letterbox``, ``crop`` or ``squash`` (:data:`~mtdsl.spec.data.RESIZE_POLICIES`);
            ``None``: ``letterbox`` with a detect or segment task, else ``crop``.

    Raises:
        ValueError: a task has no targets in ``examples``, ``image_size`` is not
            square for a letterbox or squash, or ``fit`` is ``crop`` for a detect or segment task.
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
        augment: Sequence[AugmentConfig] | None = None,
        resize: Resize | None = None,
        fit: str | None = None,
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
        size = (int(image_size[0]), int(image_size[1]))
        dense = [task for task in self.tasks if task.dense]
        fit = fit or ("letterbox" if dense else "crop")
        if fit not in RESIZE_POLICIES:
            raise ValueError(f"fit is one of {', '.join(RESIZE_POLICIES)}, not {fit!r}")
        labels_default = DEFAULT_SYNTHETIC_LABELS if self.synthetic is not None else DEFAULT_LABELS
        self.transform: ImageTransform | Letterbox
        if fit == "crop":
            if dense:
                raise ValueError(f"{dense[0].kind} task '{dense[0].task}' cannot be cropped (its targets outside the "
                                 "centre would be lost); letterbox or squash its images")
            augment = labels_default if augment is None else augment
            self.transform = ImageTransform(size, tuple(mean), tuple(std), train, tuple(augment), resize or Resize())
        else:
            if size[0] != size[1]:
                who = f"{dense[0].kind} task '{dense[0].task}'" if dense else f"resize = {fit}"
                raise ValueError(
                    f"{who} {fit}es images to a square, "
                    f"but the image size is {size[0]}x{size[1]} (height x width); make the input square"
                )
            if augment is None and not dense:
                augment = labels_default
            self.transform = Letterbox(size[0], tuple(mean), tuple(std), train,
                                       augment=None if augment is None else tuple(augment), squash=fit == "squash")
        self._targets = {
            task.task: torch.from_numpy(examples.targets[task.task]) for task in self.tasks if not task.dense
        }
        self._dense = {task.task: (task, examples.targets[task.task]) for task in dense}
        #: Segment tasks that join datasets: their targets say which classes each image's dataset labels.
        self._joined = {
            task.task: task_count(task) or 0 for task in dense if task.learns_from == "masks" and task.partial
        }

    def __len__(self) -> int:
        return len(self.examples)

    def _annotated(self, task: str, index: int) -> np.ndarray:
        """The ``(C,)`` classes example ``index``'s dataset labels for a joined segment ``task`` (all: a reader
        that does not say)."""
        annotated = self._dense[task][1][index].annotated
        return np.ones(self._joined[task], dtype=bool) if annotated is None else annotated

    def targets(self, task: str) -> torch.Tensor:
        """Every example's target for an image-label ``task``, stacked, without opening any image."""
        if task in self._dense:
            kind = self._dense[task][0].kind
            raise KeyError(f"task '{task}' is a {kind} task: its targets differ in size per example")
        if task not in self._targets:
            raise KeyError(f"no task '{task}' in this dataset; it serves {listing(self._targets)}")
        return self._targets[task].clone()

    def _read(self, reference: ImageRef | MaskSource, read: Any) -> Any:
        """``read(reference)``, or ``None`` under ``on_corrupt = "skip"`` when the file is unreadable."""
        try:
            return read(reference)
        except IMAGE_ERRORS as error:
            if self.on_corrupt == "skip":
                return None
            raise unreadable_image(reference, error) from None

    def _image(self, reference: ImageRef) -> torch.Tensor | None:
        """``(3, H, W)`` uint8, upright; ``None`` for a skipped file."""
        if isinstance(reference, int):
            assert self.synthetic is not None
            pixels = synthetic_sample(reference, self.synthetic.size, self.synthetic.seed).image
            return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)
        assert isinstance(self.transform, ImageTransform)
        draft = self.transform.draft_size()
        opened = self._read(reference, lambda path: read_rgb(path, draft=draft))
        return None if opened is None else opened[0]

    def _letterboxed(self, index: int, seed: int) -> tuple[torch.Tensor, dict[str, Any]] | None:
        """The image and the targets of every task, through one letterbox; ``None`` for a skipped file."""
        assert isinstance(self.transform, Letterbox)
        reference = self.examples.images[index]
        sample, original = None, None
        if isinstance(reference, int):
            assert self.synthetic is not None
            sample = synthetic_sample(reference, self.synthetic.size, self.synthetic.seed)
            image = torch.from_numpy(np.ascontiguousarray(sample.image)).permute(2, 0, 1)
        else:
            opened = self._read(reference, lambda path: open_rgb(path, self.transform.size))
            if opened is None:
                return None
            image, original = opened
        masks: dict[str, np.ndarray] = {}
        boxes: dict[str, BoxTarget] = {}
        points: dict[str, PointTarget] = {}
        for task, (labels, targets) in self._dense.items():
            if labels.learns_from == "boxes":
                boxes[task] = targets[index]
                continue
            if labels.learns_from == "points":
                points[task] = targets[index]
                continue
            target: MaskTarget = targets[index]
            if sample is not None:
                raw = sample.mask
            elif isinstance(target.mask, BlankMask):
                raw = target.mask.sized(*(original or (image.shape[-1], image.shape[-2])))
            else:
                raw = self._read(target.mask, read_mask)
                if raw is None:
                    return None
                check_mask_size(raw, original or (image.shape[-1], image.shape[-2]), target.mask, reference)
            masks[task] = target.classes(raw)

        given = np.concatenate([target.boxes for target in boxes.values()]) if boxes else None
        spots = np.concatenate([target.points for target in points.values()]) if points else None
        out = self.transform(image, seed, boxes=given, original_size=original, masks=list(masks.values()),
                             points=spots)
        found: dict[str, Any] = {}
        start = 0
        for task, point_target in points.items():
            found[task] = _placed_points(point_target, out, start, original or (image.shape[-1], image.shape[-2]))
            start += len(point_target.points)
        start = kept = 0
        for task, box_target in boxes.items():
            assert out.boxes is not None  # the transform was given boxes, so it placed them
            keep = out.keep[start : start + len(box_target.boxes)]
            count = int(keep.sum())
            found[task] = {
                "boxes": torch.from_numpy(out.boxes[kept : kept + count].copy()),
                "classes": torch.from_numpy(box_target.classes[keep]),
                "annotated": torch.from_numpy(box_target.annotated.copy()),
                "original": box_target.original(out.scale, original or (image.shape[-1], image.shape[-2])),
            }
            start, kept = start + len(box_target.boxes), kept + count
        for task, placed in zip(masks, out.masks):
            found[task] = placed if task not in self._joined else {
                "mask": placed, "annotated": torch.from_numpy(self._annotated(task, index))
            }
        for task, values in self._targets.items():
            found[task] = values[index].clone()
        return out.image, {task.task: found[task.task] for task in self.tasks}

    def for_evaluation(self) -> ImageDataset:
        """The same examples read as validation reads them: no augmentation, whatever the split.

        Evaluating a training split (``mtdsl eval --split train``, an overfit check) then scores the
        images themselves, and every box maps back to the file's pixels by the letterbox alone.
        """
        if not self.transform.train:
            return self
        evaluated = copy.copy(self)
        evaluated.transform = dataclasses.replace(self.transform, train=False)
        return evaluated

    def __getitem__(self, item: tuple[int, int] | int) -> dict[str, Any] | None:
        index, seed = item_index(item, len(self))
        try:
            if isinstance(self.transform, Letterbox):
                made = self._letterboxed(index, item_seed(int(seed), index))
                if made is None:
                    return None
                return {"image": made[0], "targets": made[1], "index": index}
            image = self._image(self.examples.images[index])
        except DataError as error:
            if get_worker_info() is None:
                raise
            # torch re-raises worker errors wrapped in a traceback; the main process raises this one cleanly.
            return {"unreadable": error.message}
        if image is None:
            return None
        return {
            "image": self.transform(image, item_seed(int(seed), index)),
            "targets": {task: values[index].clone() for task, values in self._targets.items()},
            "index": index,
        }


def _placed_points(target: PointTarget, out: Letterboxed, start: int, size: tuple[int, int]) -> dict[str, Any]:
    """A points task's target on the letterboxed image: its points from ``start`` on in ``out.points``, swapped
    where the ops mirrored the picture, and unlabelled where they left it."""
    moved = out.points[start : start + len(target.points)]
    labelled = target.labelled
    if any(out.flipped):
        order = flip_order(target.names, *out.flipped)
        moved, labelled = moved[order], labelled[order]
    width, height = out.picture
    inside = (moved[:, 0] >= 0) & (moved[:, 0] <= width) & (moved[:, 1] >= 0) & (moved[:, 1] <= height)
    return {
        "points": torch.from_numpy(np.ascontiguousarray(moved, dtype=np.float32)),
        "labelled": torch.from_numpy(labelled & inside),
        "canvas": torch.tensor(out.image.shape[-1:-3:-1], dtype=torch.float32),
        "original": target.original(out.scale, size),
    }


#: Per-image target parts that differ in size between images (a detect task's boxes), batched as lists.
LISTED_PARTS = ("boxes", "classes", "original")


def _batch_targets(values: list[Any]) -> Any:
    if isinstance(values[0], dict):  # a detect task, or a segment task that joins datasets
        return {
            key: [value[key] for value in values] if key in LISTED_PARTS else torch.stack([v[key] for v in values])
            for key in values[0]
        }
    return torch.stack(values)


def collate(items: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Stack items into a batch, dropping the ``None`` of skipped images.

    Returns:
        ``{"image": (N, C, H, W), "targets": {task: …}, "index": (N,) int64,
        "skipped": int}``, where a task's targets are ``(N, …)`` stacked
        (classify, binary, multilabel; segment: ``(N, S, S)`` int64), or for a
        detect task ``{"boxes": [(K_i, 4) float32] * N, "classes": [(K_i,)
        int64] * N, "annotated": (N, C) bool, "original": [dict] * N}``, for a segment task that joins
        datasets ``{"mask": (N, S, S) int64, "annotated": (N, C) bool}``. When every item was skipped,
        ``N`` is 0: ``image`` is an empty ``(0,)`` float tensor, ``targets`` is
        ``{}`` and ``index`` is empty, so check ``batch["index"].numel() == 0``
        before using it. ``{"unreadable": message}`` when a loader worker met an
        unreadable file (see :func:`raise_if_unreadable`).
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
        "targets": {task: _batch_targets([item["targets"][task] for item in kept]) for task in kept[0]["targets"]},
        "index": torch.tensor([item["index"] for item in kept], dtype=torch.long),
        "skipped": skipped,
    }
