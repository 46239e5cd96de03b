"""``segment(roads)``: a class per pixel, through a segmentation head on a neck."""

from __future__ import annotations

from mtdsl.kinds.registry import TASK_KINDS, TaskKind

SEGMENT = TASK_KINDS.register(TaskKind(
    "segment",
    "a class per pixel",
    heads=("segmentation",),
    losses=("cross_entropy",),
    targets="masks",
    one_class=(
        "every pixel needs a class, the background included",
        "list the background too, e.g. classes = [background, road]",
    ),
    dice=True,
    joins_by_class_name=False,  # masks are matched by their class values
))
