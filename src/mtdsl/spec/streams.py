"""Streams: the groups of tasks that are trained from the same batches.

Tasks that read the same dataset (or the same datasets joined, as in
``detect(pets + coco)``) share one stream: each of its batches runs one
forward pass through the union of their paths and sums their losses (thesis
§6.2, "sum the losses of multiple tasks"). A ``balanced`` binary task gets a
stream of its own, because its batches are drawn half positive, half negative
for that task alone (thesis §6.4). Sampling strategies pick streams.

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

from mtdsl.kinds import TASK_KINDS
from mtdsl.spec.document import Spec
from mtdsl.spec.stream import Stream

__all__ = ["Stream", "batch_size", "is_balanced", "plan_streams"]


def is_balanced(spec: Spec, task: str) -> bool:
    """Binary tasks draw balanced batches unless the spec says ``balanced = false``."""
    training = spec.train.tasks[task]
    return TASK_KINDS[spec.model.tasks[task].kind].yes_no and training.balanced is not False


def batch_size(spec: Spec, task: str) -> int:
    return spec.train.tasks[task].batch_size or spec.train.batch_size


def plan_streams(spec: Spec) -> list[Stream]:
    """The spec's streams: one per dataset (or join of datasets), plus one per balanced binary task."""
    shared: dict[tuple[str, ...], list[str]] = {}
    streams: list[Stream] = []
    for task, training in spec.train.tasks.items():
        if is_balanced(spec, task):
            streams.append(Stream(training.datasets, (task,), batch_size(spec, task), balanced=task))
        else:
            shared.setdefault(training.datasets, []).append(task)
    for datasets, tasks in shared.items():
        streams.append(Stream(datasets, tuple(tasks), max(batch_size(spec, t) for t in tasks)))
    order = list(spec.train.tasks)
    return sorted(streams, key=lambda stream: order.index(stream.tasks[0]))
