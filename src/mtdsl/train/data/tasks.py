"""What each task reads from a dataset: :class:`TaskLabels`, from a validated spec.

The data modules, the metrics and the loop all name tasks this way, so it sits below
all of them.

>>> TaskLabels("shape", "classify", 3).learns_from, TaskLabels("box", "detect", 3).dense
('labels', True)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mtdsl.errors import DataError, did_you_mean, listing
from mtdsl.kinds import TASK_KINDS
from mtdsl.kinds.registry import Targets

if TYPE_CHECKING:
    from mtdsl.spec.document import Spec

__all__ = ["TaskLabels", "task_labels"]


@dataclass(frozen=True)
class TaskLabels:
    """What one task reads from a dataset.

    Attributes:
        task: the task's name.
        kind: the task kind's name (:data:`mtdsl.kinds.TASK_KINDS`).
        classes: the class names in index order; an int when the spec wrote
            ``classes = N`` (the dataset's labels, categories or class names
            then name them); ``None`` for binary. A detect task's classes are
            the object classes (no background); a segment task's are indexed by
            the mask's class values (index 0 usually ``background``).
        label: the dataset field to read (``TaskTraining.label``); ``None`` for the default.
        positive: the label that counts as "yes" for a binary task.
        partial: the task learns from several datasets (``detect(pets + coco)``),
            so one dataset may label only some of its classes. A detect task's
            targets then mark, per image, which classes its dataset annotates.
    """

    task: str
    kind: str
    classes: tuple[str, ...] | int | None
    label: str | None = None
    positive: str | None = None
    partial: bool = False

    @property
    def learns_from(self) -> Targets:
        """What the task's kind learns from: ``labels`` per image, ``boxes`` or ``masks``."""
        return TASK_KINDS[self.kind].targets

    @property
    def dense(self) -> bool:
        """Its targets move with the pixels (boxes, masks)."""
        return TASK_KINDS[self.kind].dense


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
        if TASK_KINDS[task.kind].dense and (training.label or training.positive):
            key = "label" if training.label else "positive"
            raise DataError(
                f"task '{name}' is a {task.kind} task; '{key}' picks an image label, which it does not read",
                spec.span("task", name),
                hint=f"remove '{key}' from task '{name}'",
            )
        classes = _declared_classes(task.classes) if TASK_KINDS[task.kind].takes_classes else None
        partial = len(training.datasets) > 1
        found.append(TaskLabels(name, task.kind, classes, training.label, training.positive, partial))
    return found
