"""``multilabel(attributes)``: several independent yes/no labels per image."""

from __future__ import annotations

from mtdsl.kinds.registry import TASK_KINDS, TaskKind

MULTILABEL = TASK_KINDS.register(TaskKind(
    "multilabel",
    "several independent yes/no labels per image",
    heads=("linear", "mlp"),
    losses=("bce", "focal"),
))
