"""The learning rate as a pure function of training progress, measured in epochs.

Progress is fractional (``epoch + step / steps_in_epoch``), so epochs of
different lengths (ramped or dynamic sampling) need no special handling, and a
resumed run recomputes the same value from its position: nothing but the
position has to be saved.

* ``constant``: the optimizer's ``lr``.
* ``cyclic``: triangular between ``base_lr`` and ``max_lr`` with period ``cycle_epochs`` (Smith 2017);
  ``max_lr`` is the optimizer's ``lr`` and ``base_lr`` a hundredth of it unless the spec says otherwise.
* ``cosine``: from ``lr`` down to ``min_lr`` over all epochs.
* ``step``: ``lr · gamma^⌊epoch / every⌋``.
* ``poly``: ``min_lr + (lr - min_lr) · (1 - progress / epochs)^power`` (DeepLab's, ``power = 0.9``).

``warmup`` epochs scale the value linearly up from 0, and a phase with its own
``lr`` holds that value for its epochs.

>>> from mtdsl.spec.training import CosineScheduleConfig, PhaseSpec
>>> schedule = LearningRate(CosineScheduleConfig(), base_lr=0.1, epochs=10)
>>> [round(schedule.at(e), 4) for e in (0, 5, 10)]
[0.1, 0.05, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

from mtdsl.spec.registry import Builders, Config
from mtdsl.spec.training import (
    SCHEDULES,
    ConstantScheduleConfig,
    CosineScheduleConfig,
    CyclicScheduleConfig,
    PolyScheduleConfig,
    StepScheduleConfig,
)


class RatedPhase(Protocol):
    """A phase as the schedule reads it: its length, and the rate it holds (``None``: the schedule's)."""

    @property
    def epochs(self) -> int: ...

    @property
    def lr(self) -> float | None: ...


#: ``rule(schedule, base_lr, epochs, progress) -> lr`` per schedule kind, before warm-up and phase overrides.
SCHEDULE_RULES: Builders[Callable[[Config, float, int, float], float]] = Builders(SCHEDULES)


class LearningRate:
    """Args:
    schedule: the spec's schedule config.
    base_lr: the optimizer's ``lr``.
    epochs: total epochs of the run.
    warmup: warm-up length in epochs.
    phases: the spec's phases, for their ``lr`` overrides.
    """

    def __init__(self, schedule: Config, base_lr: float, epochs: int, warmup: float = 0.0,
                 phases: Sequence[RatedPhase] = ()) -> None:
        self.schedule = schedule
        self.base_lr = base_lr
        self.epochs = epochs
        self.warmup = warmup
        self.phases = list(phases)

    def _phase_lr(self, progress: float) -> float | None:
        """The ``lr`` of the phase whose step ends at ``progress``: a step that ends on a phase's last
        boundary is still that phase's (the loop asks for each step's rate at the step's end)."""
        start = 0
        for phase in self.phases:
            if start < progress <= start + phase.epochs or progress == start == 0:
                return phase.lr
            start += phase.epochs
        return None

    def at(self, progress: float) -> float:
        """The learning rate of the step that ends after ``progress`` epochs."""
        value = self._phase_lr(progress)
        if value is None:
            value = SCHEDULE_RULES.build(self.schedule, self.base_lr, self.epochs, progress)
        if self.warmup and progress < self.warmup:
            value *= progress / self.warmup
        return value


@SCHEDULE_RULES.register("constant")
def _constant(schedule: ConstantScheduleConfig, base_lr: float, epochs: int, progress: float) -> float:
    return base_lr


@SCHEDULE_RULES.register("cyclic")
def _cyclic(schedule: CyclicScheduleConfig, base_lr: float, epochs: int, progress: float) -> float:
    high = schedule.max_lr if schedule.max_lr is not None else base_lr
    low = schedule.base_lr if schedule.base_lr is not None else min(high / 100, high)
    position = progress / schedule.cycle_epochs
    triangle = 1 - abs(2 * (position - math.floor(position)) - 1)
    return low + (high - low) * triangle


@SCHEDULE_RULES.register("cosine")
def _cosine(schedule: CosineScheduleConfig, base_lr: float, epochs: int, progress: float) -> float:
    fraction = min(progress / epochs, 1.0)
    return schedule.min_lr + (base_lr - schedule.min_lr) * (1 + math.cos(math.pi * fraction)) / 2


@SCHEDULE_RULES.register("step")
def _step(schedule: StepScheduleConfig, base_lr: float, epochs: int, progress: float) -> float:
    return base_lr * schedule.gamma ** math.floor(progress / schedule.every)


@SCHEDULE_RULES.register("poly")
def _poly(schedule: PolyScheduleConfig, base_lr: float, epochs: int, progress: float) -> float:
    remaining = max(1.0 - progress / epochs, 0.0)
    return schedule.min_lr + (base_lr - schedule.min_lr) * remaining**schedule.power
