"""Joint sampling's training examples: every dataset's training photos merged by photo.

Under ``sampling = joint`` one stream trains every task. Its examples are the
union of the datasets' training examples, merged by photo (its normalised
path): a photo that a CSV of breeds, a COCO file of head boxes and a folder of
masks all label becomes one example carrying the three tasks' targets, so one
forward pass trains all three. A task whose datasets do not label a photo gets
its kind's *unknown* target there (:data:`UNKNOWN_TARGETS`): a classify task's
ignored class, nan for binary and multilabel, a detect target whose dataset
annotates no class, an all-ignored mask, points none of which is labelled.
Each kind's loss gives an unknown target exactly zero loss and zero gradient,
and leaves it out of the average of the known ones.

Merging is greedy and loses nothing: an example of dataset ``D`` joins the
first example of its photo that holds no target yet for ``D``'s tasks, else it
starts a new one. So a keypoints dataset's several instances of one photo stay
several examples (the first carries the photo's other labels), and a task that
joins two datasets labelling the same photo keeps both targets, in two examples.

>>> import numpy as np
>>> from mtdsl.train.data.tasks import TaskLabels
>>> breeds = Examples(("a.jpg", "b.jpg"), {"breed": np.array([0, 2])})
>>> heads = Examples(("b.jpg", "c.jpg"), {"large": np.array([1.0, 0.0], dtype=np.float32)})
>>> tasks = [TaskLabels("breed", "classify", 3), TaskLabels("large", "binary", None)]
>>> merged = merge_by_photo({"breeds": breeds, "heads": heads}, {"breeds": ["breed"], "heads": ["large"]}, tasks)
>>> merged.images, merged.targets["breed"].tolist(), merged.targets["large"].tolist()
(('a.jpg', 'b.jpg', 'c.jpg'), [0, 2, -100], [nan, 1.0, 0.0])
>>> labelled_counts(merged, tasks)
{'breed': 2, 'large': 2}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from mtdsl.errors import listing
from mtdsl.kinds.registry import KindTable
from mtdsl.train.data.examples import Examples, common_generator
from mtdsl.train.data.sources import ImageRef
from mtdsl.train.data.tasks import TaskLabels

__all__ = ["IS_UNKNOWN", "UNKNOWN_TARGETS", "labelled_counts", "merge_by_photo", "photo_key"]

#: Per kind, ``unknown(like, count)``: ``count`` targets that say nothing, shaped as the known targets ``like``
#: (a non-empty array of the task's targets, whose class count and point names they copy). Registered from
#: each kind's ``mtdsl/kinds/<kind>/train.py``.
UNKNOWN_TARGETS: KindTable[Callable[[np.ndarray, int], np.ndarray]] = KindTable("unknown target",
                                                                               loads="mtdsl.train.kinds")
#: Per kind, ``is_unknown(targets) -> (N,) bool``: which of a split's targets say nothing (what
#: :data:`UNKNOWN_TARGETS` makes, or a dataset's own unknowns).
IS_UNKNOWN: KindTable[Callable[[np.ndarray], np.ndarray]] = KindTable("unknown-target reader",
                                                                     loads="mtdsl.train.kinds")


def photo_key(image: ImageRef) -> ImageRef:
    """What makes two examples the same photo: the normalised path (a synthetic sample's index as it is)."""
    return image if isinstance(image, int) else os.path.normpath(str(image))


def merge_by_photo(parts: Mapping[str, Examples], tasks_of: Mapping[str, Sequence[str]],
                   tasks: Sequence[TaskLabels]) -> Examples:
    """One set of examples from the datasets' ``parts``, merged by photo (see the module docstring).

    Args:
        parts: per dataset name, its examples (their targets hold at least the dataset's tasks).
        tasks_of: per dataset name, the tasks that read it.
        tasks: every task of the merged examples, in order.

    Raises:
        ValueError: a task that no part reads (it would have no known target to shape its unknowns on), or
            synthetic parts of two generator configs.
    """
    slots: list[dict[str, tuple[str, int]]] = []  # per merged example: task → (dataset, its index there)
    images: list[ImageRef] = []
    by_photo: dict[ImageRef, list[int]] = {}
    for name, examples in parts.items():
        own = tasks_of[name]
        for index, image in enumerate(examples.images):
            taken = by_photo.setdefault(photo_key(image), [])
            slot = next((s for s in taken if not any(task in slots[s] for task in own)), None)
            if slot is None:
                slot = len(slots)
                slots.append({})
                images.append(image)
                taken.append(slot)
            slots[slot].update(dict.fromkeys(own, (name, index)))
    return Examples(tuple(images), {task.task: _merged_targets(task, parts, slots) for task in tasks},
                    common_generator(parts.values(), "merge"))


def _merged_targets(task: TaskLabels, parts: Mapping[str, Examples],
                    slots: Sequence[Mapping[str, tuple[str, int]]]) -> np.ndarray:
    """``task``'s target in every merged example: its dataset's where one labels the photo, else unknown."""
    known = [examples.targets[task.task] for examples in parts.values()
             if task.task in examples.targets and len(examples.targets[task.task])]
    if not known:
        raise ValueError(f"no examples label task '{task.task}'; the parts hold {listing(parts)}")
    merged = UNKNOWN_TARGETS[task.kind](known[0], len(slots))
    for name, examples in parts.items():
        picked = [(slot, found[task.task][1]) for slot, found in enumerate(slots)
                  if task.task in found and found[task.task][0] == name]
        if picked:
            into, source = (np.array(column, dtype=np.int64) for column in zip(*picked))
            merged[into] = examples.targets[task.task][source]
    return merged


def labelled_counts(examples: Examples, tasks: Sequence[TaskLabels]) -> dict[str, int]:
    """How many of ``examples`` label each task (their target is not unknown)."""
    return {task.task: int((~IS_UNKNOWN[task.kind](examples.targets[task.task])).sum()) for task in tasks}
