"""Where a run is: the typed state the loop carries from step to step and every checkpoint keeps.

A checkpoint holds it as plain values (``torch.load(..., weights_only=True)``
reads nothing else), under ``"state"``, in the same keys as ever, so the
checkpoints of earlier versions resume:

>>> state = RunState(run="0f3a", seed=1, epoch=2, step=40, best=0.75, best_epoch=2)
>>> RunState.from_dict(state.to_dict()) == state
True
>>> state.to_dict()["within_epoch"] is None
True
>>> place = EpochPlace.start(["shape", "colour"])
>>> place.add("shape", 0.5); place.steps = 3
>>> RunState.from_dict({**state.to_dict(), "within_epoch": place.to_dict()}).within_epoch == place
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass
class EpochPlace:
    """How far an epoch has come: its finished steps, their loss sums, its seconds so far.

    A run stopped by a signal within an epoch saves this, and ``--resume`` goes on after
    ``steps`` steps with the sums where they were.
    """

    steps: int
    loss_sums: dict[str, float]
    loss_counts: dict[str, int]
    seconds: float = 0.0
    gradient_norms: dict[str, Any] | None = None

    @classmethod
    def start(cls, tasks: Iterable[str]) -> EpochPlace:
        tasks = list(tasks)
        return cls(steps=0, loss_sums=dict.fromkeys(tasks, 0.0), loss_counts=dict.fromkeys(tasks, 0))

    def add(self, task: str, loss: float) -> None:
        self.loss_sums[task] += loss
        self.loss_counts[task] += 1

    def mean_losses(self) -> dict[str, float]:
        """Each task's mean loss over the epoch's steps so far (tasks with no step left out)."""
        return {task: total / self.loss_counts[task] for task, total in self.loss_sums.items()
                if self.loss_counts[task]}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EpochPlace:
        return cls(steps=int(values["steps"]), loss_sums=dict(values["loss_sums"]),
                   loss_counts=dict(values["loss_counts"]), seconds=float(values["seconds"]),
                   gradient_norms=values.get("gradient_norms"))


@dataclass
class RunState:
    """Args:
    run: this run's id, kept in every checkpoint, so a ``best.pt`` of another run is never tested.
    seed: the run's seed; a resume with another one is refused.
    epoch: epochs finished.
    step: optimizer steps taken, over the whole run.
    best: the best mean validation metric so far (``-inf`` before the first epoch).
    best_epoch: the epoch that scored it (``None`` before the first).
    within_epoch: where a stop within an epoch left it (``None`` at an epoch's boundary).
    """

    run: str
    seed: int
    epoch: int = 0
    step: int = 0
    best: float = -math.inf
    best_epoch: int | None = None
    within_epoch: EpochPlace | None = field(default=None)

    def end_epoch(self, epoch: int, score: float) -> bool:
        """Mark ``epoch`` finished with mean validation ``score``; whether it is the best epoch so far.

        The first epoch is the best so far whatever its score, so ``best.pt`` always comes from this
        run; a score that is not finite never beats a finite one.

        >>> state = RunState(run="r", seed=0)
        >>> state.end_epoch(1, float("nan")), state.end_epoch(2, 0.4), state.end_epoch(3, 0.3)
        (True, True, False)
        >>> state.epoch, state.best_epoch, state.best
        (3, 2, 0.4)
        """
        self.epoch = epoch
        score = score if math.isfinite(score) else -math.inf
        is_best = self.best_epoch is None or score > self.best
        if is_best:
            self.best, self.best_epoch = score, epoch
        return is_best

    def to_dict(self) -> dict[str, Any]:
        values = asdict(replace(self, within_epoch=None))
        values["within_epoch"] = None if self.within_epoch is None else self.within_epoch.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunState:
        within = values.get("within_epoch")
        return cls(run=values["run"], seed=values["seed"], epoch=values["epoch"], step=values["step"],
                   best=values["best"], best_epoch=values["best_epoch"],
                   within_epoch=None if within is None else EpochPlace.from_dict(within))
