"""``classify(pets)``: one class per image, softmax over the classes."""

from __future__ import annotations

from mtdsl.kinds.registry import TASK_KINDS, TaskKind

CLASSIFY = TASK_KINDS.register(TaskKind(
    "classify",
    "single-label classification (softmax over classes)",
    heads=("linear", "mlp"),
    losses=("cross_entropy",),
    one_class=("softmax over one class cannot learn", "use a binary task for yes/no, or list at least two classes"),
))
