"""``binary(people)``: one yes/no label per image, one logit."""

from __future__ import annotations

from mtdsl.kinds.registry import TASK_KINDS, TaskKind

BINARY = TASK_KINDS.register(TaskKind(
    "binary",
    "one yes/no label per image (one logit)",
    heads=("linear", "mlp"),
    losses=("bce", "focal"),
    no_classes=(
        "has one yes/no output; 'classes' does not apply",
        "remove 'classes' and name the positive label with positive = \"…\" if the dataset has several",
    ),
    yes_no=True,
    joins_by_class_name=False,  # each dataset says yes or no; there are no class names to match
))
