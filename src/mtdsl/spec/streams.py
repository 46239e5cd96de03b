"""Streams: the groups of tasks that are trained from the same batches.

Tasks that read the same dataset (or the same datasets joined, as in
``detect(pets + coco)``) share one stream: each of its batches runs one
forward pass through the union of their paths and sums their losses (thesis
§6.2, "sum the losses of multiple tasks"). A ``balanced`` binary task gets a
stream of its own, because its batches are drawn half positive, half negative
for that task alone (thesis §6.4), and so does a task that writes its own
``augment = [...]``: a stream's images are one tensor that every task of the
stream reads, so tasks augmented differently cannot share its batches (tasks
of the same datasets that write the same ``augment`` share a stream). Sampling
strategies pick streams.

Under ``sampling = joint`` there is one training stream over every task: its
examples are the datasets' training photos merged by photo, so a photo that
three datasets label trains three tasks in one forward pass. The streams it
merges stay its :attr:`Stream.parts`: each task is still validated and tested
on its own dataset's splits.

Streams follow from the spec alone, so they are planned in the spec layer: a
check (:func:`mtdsl.spec.checks.check_shared_batches`) needs them before
anything is built.

>>> from mtdsl.spec.load import load_text
>>> spec = load_text('''model demo
... backbone trunk = timm("test_resnet")
... dataset shapes = synthetic()
... task shape: classify(shapes) { classes = 3 }
... task colour: classify(shapes) { classes = 3 }
... task large: binary(shapes)''')
>>> [s.label for s in plan_streams(spec)]
['shape+colour', 'large']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mtdsl.kinds import TASK_KINDS
from mtdsl.spec.augment import AugmentConfig
from mtdsl.spec.model import ModelSpec
from mtdsl.spec.training import TrainSpec

__all__ = ["Stream", "batch_size", "is_balanced", "plan_streams"]


@dataclass(frozen=True)
class Stream:
    """One source of batches: its datasets, the tasks trained on them, and how its batches are drawn.

    A validated :class:`~mtdsl.spec.document.Spec` keeps its streams (``spec.streams``).

    Attributes:
        datasets: the spec's dataset names; the examples of several are joined into one pool.
        tasks: the tasks each batch trains, in spec order.
        batch_size: examples per batch.
        balanced: the binary task whose batches are half positive, half negative, if any.
        augment: the tasks' own ``augment``, which replaces the datasets'; ``None``: the datasets'.
        parts: for the joint stream (``sampling = joint``), the per-dataset streams whose training photos it
            merges; each is evaluated on its own splits. Empty for every other stream.
    """

    datasets: tuple[str, ...]
    tasks: tuple[str, ...]
    batch_size: int
    balanced: str | None = None
    augment: tuple[AugmentConfig, ...] | None = None
    parts: tuple[Stream, ...] = ()

    @property
    def joint(self) -> bool:
        """Its training examples are the photos of :attr:`parts` merged (``sampling = joint``)."""
        return bool(self.parts)

    @property
    def dataset(self) -> str:
        """The stream's source in messages and file names: ``coco``, or ``pets+coco`` for joined datasets."""
        return "+".join(self.datasets)

    @property
    def label(self) -> str:
        return "+".join(self.tasks)


class SpecParts(Protocol):
    """What planning reads of a :class:`~mtdsl.spec.document.Spec`.

    A protocol rather than the class, because ``document`` imports :class:`Stream` from here.
    """

    @property
    def model(self) -> ModelSpec: ...

    @property
    def train(self) -> TrainSpec: ...


def is_balanced(spec: SpecParts, task: str) -> bool:
    """Binary tasks draw balanced batches unless the spec says ``balanced = false``."""
    training = spec.train.tasks[task]
    return TASK_KINDS[spec.model.tasks[task].kind].yes_no and training.balanced is not False


def batch_size(spec: SpecParts, task: str) -> int:
    return spec.train.tasks[task].batch_size or spec.train.batch_size


def plan_streams(spec: SpecParts) -> list[Stream]:
    """The spec's streams: one per dataset (or join of datasets) and ``augment`` of its tasks, plus one per
    balanced binary task; under ``sampling = joint``, one stream that merges those.

    >>> from mtdsl.spec.load import load_text
    >>> joint = load_text('''model demo
    ... backbone trunk = timm("test_resnet")
    ... dataset a = synthetic()
    ... dataset b = synthetic()
    ... task one: classify(a) { classes = 3 }
    ... task two: classify(b) { classes = 3 }
    ... train { sampling = joint }''')
    >>> [(s.label, [part.dataset for part in s.parts]) for s in plan_streams(joint)]
    [('one+two', ['a', 'b'])]
    """
    streams = _dataset_streams(spec)
    if spec.train.sampling.kind != "joint":
        return streams
    datasets = tuple(dict.fromkeys(name for stream in streams for name in stream.datasets))
    tasks = tuple(task for task in spec.train.tasks)
    return [Stream(datasets, tasks, spec.train.batch_size, parts=tuple(streams))]


def _dataset_streams(spec: SpecParts) -> list[Stream]:
    # A list, not a dict: ops hold lists (crop's scale), so they compare but do not hash.
    shared: list[tuple[tuple[str, ...], tuple[AugmentConfig, ...] | None, list[str]]] = []
    streams: list[Stream] = []
    for task, training in spec.train.tasks.items():
        if is_balanced(spec, task):
            streams.append(Stream(training.datasets, (task,), batch_size(spec, task), balanced=task,
                                  augment=training.augment))
            continue
        key = (training.datasets, training.augment)
        group = next((tasks for *other, tasks in shared if tuple(other) == key), None)
        if group is None:
            shared.append((*key, group := []))
        group.append(task)
    for datasets, augment, tasks in shared:
        streams.append(Stream(datasets, tuple(tasks), max(batch_size(spec, t) for t in tasks), augment=augment))
    order = list(spec.train.tasks)
    return sorted(streams, key=lambda stream: order.index(stream.tasks[0]))
