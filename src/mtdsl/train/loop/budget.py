"""A training budget set by the caller rather than the spec: how much each epoch may train.

``mtdsl compare --train`` trains each task's single-task model with the budget
its task had inside the multi-task run, epoch by epoch, so the comparison is
fair and says what it held equal:

* ``images``: epoch ``e`` draws as many training images as the task saw in the
  multi-task run's epoch ``e`` (the sampler shares them out by its ratios);
* ``seconds``: epoch ``e`` trains until its share of the multi-task epoch's
  wall time is spent (validation is not counted, as it is not in the
  multi-task run's ``seconds``).

The spec's phases, schedule and validation are unchanged: an epoch is only
shorter or longer.

>>> budget = Budget(images=(640, 320))
>>> budget.check(epochs=2); budget.images_at(1), budget.out_of_time(1, elapsed=1e9)
(320, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BUDGET_KINDS = ("images", "seconds")


@dataclass(frozen=True)
class Budget:
    images: tuple[int, ...] | None = None
    seconds: tuple[float, ...] | None = None

    @classmethod
    def of(cls, kind: str, per_epoch: Sequence[float]) -> Budget:
        """``kind`` (one of :data:`BUDGET_KINDS`) per epoch."""
        if kind == "images":
            return cls(images=tuple(max(1, round(value)) for value in per_epoch))
        if kind == "seconds":
            return cls(seconds=tuple(float(value) for value in per_epoch))
        raise ValueError(f"a budget is one of {BUDGET_KINDS}, not {kind!r}")

    def check(self, epochs: int) -> None:
        """A budget names every epoch of the run, or fewer when the run it comes from stopped early
        (``early_stop``): the run then ends after the last epoch it names."""
        for name in BUDGET_KINDS:
            values = getattr(self, name)
            if values is not None and not 0 < len(values) <= epochs:
                raise ValueError(f"the {name} budget names {len(values)} epochs; the run has {epochs}")

    def covers(self, epoch: int) -> bool:
        """Whether the budget lets epoch ``epoch`` (0-based) train: always, without one."""
        values = self.images if self.images is not None else self.seconds
        return values is None or epoch < len(values)

    def images_at(self, epoch: int) -> int | None:
        """How many images epoch ``epoch`` (0-based) draws, or ``None`` for the spec's own epoch length."""
        return None if self.images is None else self.images[epoch]

    def out_of_time(self, epoch: int, elapsed: float) -> bool:
        """Whether epoch ``epoch`` has trained for its ``seconds`` (never, under an images budget)."""
        return self.seconds is not None and elapsed >= self.seconds[epoch]
