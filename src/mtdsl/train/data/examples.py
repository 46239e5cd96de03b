"""One split of a dataset as :class:`Examples` (images and every task's targets), and joining several datasets."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mtdsl.errors import DataError, listing
from mtdsl.kinds import TASK_KINDS
from mtdsl.kinds.registry import KindTable
from mtdsl.spec.data import SyntheticDataset
from mtdsl.train.data.sources import ImageRef
from mtdsl.train.data.tasks import TaskLabels

__all__ = ["Examples", "check_classes_labelled", "join_datasets", "join_examples"]


@dataclass(frozen=True, eq=False)
class Examples:
    """One split of a dataset: per example its image and, per task, its target.

    Attributes:
        images: file paths, or indices of synthetic samples.
        targets: per task, every example's target: ``(N,)`` int64 class
            indices (classify; -100 where unknown), ``(N,)`` float32 0/1 (binary), ``(N, C)``
            float32 multi-hot (multilabel), with :data:`UNKNOWN` (nan) where
            the example's dataset does not say, or a ``(N,)`` object array of one
            :class:`~mtdsl.train.data.box_mask_targets.BoxTarget` (detect: boxes in
            the image file's pixels, class indices, and the ``(C,)`` mask of
            the classes the example's dataset annotates) or
            :class:`~mtdsl.train.data.box_mask_targets.MaskTarget` (segment: the mask
            file or synthetic index, and the value → class lookup) per example.
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

    def select(self, tasks: Iterable[str]) -> Examples:
        """The same examples with the targets of ``tasks`` only."""
        return Examples(self.images, {task: self.targets[task] for task in tasks}, self.synthetic)


def join_examples(parts: Sequence[Examples]) -> Examples:
    """The examples of ``parts`` one after the other, e.g. two datasets of one detect task.

    Each example keeps its own targets, so a :class:`BoxTarget`'s ``annotated``
    mask still says which classes its own dataset labels.

    Raises:
        ValueError: the parts hold targets for different tasks, or synthetic
            examples of two different generator configs.
    """
    if not parts:
        raise ValueError("join_examples needs at least one Examples")
    tasks = list(parts[0].targets)
    for part in parts[1:]:
        if list(part.targets) != tasks:
            raise ValueError(f"cannot join examples with targets for {listing(tasks)} and {listing(part.targets)}")
    return Examples(
        tuple(image for part in parts for image in part.images),
        {task: np.concatenate([part.targets[task] for part in parts]) for task in tasks},
        common_generator(parts, "join"),
    )


def common_generator(parts: Iterable[Examples], verb: str) -> SyntheticDataset | None:
    """The one synthetic generator config of ``parts`` (``None`` when none is synthetic).

    Raises:
        ValueError: two parts are synthetic examples of different configs: their indices would clash.
    """
    generators = []
    for part in parts:
        if part.synthetic is not None and part.synthetic not in generators:
            generators.append(part.synthetic)
    if len(generators) > 1:
        raise ValueError(f"cannot {verb} synthetic examples of different generator configs (their indices would clash)")
    return next(iter(generators), None)


def join_datasets(parts: Mapping[str, Mapping[str, Examples]], tasks: Sequence[TaskLabels]) -> dict[str, Examples]:
    """The splits of several datasets joined split by split, for the ``tasks`` that learn from all of them.

    A split that only some datasets have (``test``) joins those. Each example
    keeps its own targets, so a detect task's images still say which classes
    their own dataset annotates.

    Args:
        parts: per dataset name, its splits from :func:`read_splits`.
        tasks: the tasks of the joined stream (targets of other tasks are left out).

    Raises:
        DataError: a detect task has a class that none of the datasets annotates.
    """
    names = [task.task for task in tasks]
    joined = {}
    for split in dict.fromkeys(split for splits in parts.values() for split in splits):
        joined[split] = join_examples([splits[split].select(names) for splits in parts.values() if split in splits])
    for task in tasks:
        if TASK_KINDS[task.kind].takes_classes:
            check_classes_labelled(task, parts)
    return joined


#: Which classes one dataset split's targets label, for each kind with classes, registered from the kind's
#: folder (``mtdsl/kinds/<kind>/train.py``): ``labelled(targets, count) -> (count,) bool``.
LABELLED: KindTable[Callable[[np.ndarray, int], np.ndarray]] = KindTable("labelled-classes reader",
                                                                         loads="mtdsl.train.kinds")


def check_classes_labelled(task: TaskLabels, parts: Mapping[str, Mapping[str, Examples]]) -> None:
    """Raise :class:`DataError` when none of a joined task's datasets labels one of its classes.

    A detect or segment task's class counts when a dataset annotates it, a
    multilabel task's when a dataset labels it (a known 0 or 1), a classify
    task's when a dataset has an image of it.
    """
    classes = tuple(task.classes) if isinstance(task.classes, tuple) else ()
    labelled = np.zeros(len(classes), dtype=bool)
    for splits in parts.values():
        for examples in splits.values():
            labelled |= LABELLED[task.kind](examples.targets[task.task], len(classes))
    missing = [name for name, found in zip(classes, labelled) if not found]
    if missing:
        raise DataError(
            f"task '{task.task}' learns class '{missing[0]}', but none of {' + '.join(parts)} labels it"
            + (f" (nor {listing(missing[1:])})" if len(missing) > 1 else ""),
            expected="every class of the task labelled by at least one of its datasets",
            hint="check the spelling against the datasets' labels or category names"
            + (", or list the classes a coco dataset annotates with classes = [...]"
               if TASK_KINDS[task.kind].targets == "boxes" else ""),
        )
