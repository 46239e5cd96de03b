"""Each step's losses and backbone gradient norm, kept on the device and read to the host together.

Reading a CUDA tensor's value (``.item()``) makes the host wait until the GPU
has finished every kernel queued before it, so a loop that reads each step's
loss cannot queue the next step while the GPU computes this one. The loop
therefore records each step's values as device tensors and reads them out once
every ``every`` steps, at an epoch's last step, and (in one process) as soon as
a stop signal has arrived: one copy to the host for all of them. The host then
does what it did step by step before, in the same order and arithmetic (float64
sums of the float32 values), so a run's logged losses, gradient norms and
resumed weights are the same bit for bit whatever the interval: the epoch's
means, the progress bar, and the check that every loss is finite, which now
stops the run at the read-out and names the step whose loss was not finite.

With several processes the read-out is also where they agree, in one
all-reduce: each step's losses are averaged over the ranks (a NaN on one rank
makes the average NaN on all of them, so all stop together) and a stop signal
that reached any rank stops every rank after the same step. So that every rank
reads out at the same steps, a signal waits for the next regular read-out there.

>>> import torch
>>> from mtdsl.spec.streams import Stream
>>> from mtdsl.train.parallel.world import World
>>> readout = StepReadout([Stream(("d",), ("a", "b"), 8)], World(), every=2)
>>> readout.record(0, 1, {"a": torch.tensor(0.5), "b": torch.tensor(2.0)})
>>> readout.due(last=False)
False
>>> readout.record(0, 2, {"a": torch.tensor(0.25), "b": torch.tensor(1.0)})
>>> steps, stop = readout.read()
>>> [(step.number, step.losses) for step in steps], stop
([(1, {'a': 0.5, 'b': 2.0}), (2, {'a': 0.25, 'b': 1.0})], None)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from mtdsl.spec.streams import Stream
from mtdsl.train.loop.gradients import GradientNorms
from mtdsl.train.loop.runtime import stop_on_non_finite
from mtdsl.train.parallel.world import World
from mtdsl.train.run.stop_signals import stop_requested


@dataclass(frozen=True)
class ReadStep:
    """One step's values on the host: its run-wide number, stream, losses, and backbone gradient norm."""

    number: int
    stream: int
    losses: dict[str, float]
    gradient_norm: float | None = None
    scale: float = 1.0


class StepReadout:
    """Args:
    streams: the run's streams (each step's losses are its stream's tasks, in order).
    world: the run's processes; they agree on losses and stop signals at each read-out.
    every: steps between read-outs (at least 1).
    """

    def __init__(self, streams: Sequence[Stream], world: World, every: int) -> None:
        self.streams = list(streams)
        self.world = world
        self.every = max(1, int(every))
        self._pending: list[tuple[int, int, bool, bool]] = []  # number, stream, has norm, has scale
        self._losses: list[torch.Tensor] = []
        self._extras: list[torch.Tensor] = []

    @property
    def pending(self) -> int:
        """Steps recorded and not read out yet."""
        return len(self._pending)

    def record(self, stream: int, number: int, losses: Mapping[str, torch.Tensor],
               gradient_norm: torch.Tensor | None = None, scale: torch.Tensor | None = None) -> None:
        """Keep step ``number``'s values (``losses`` keyed by its stream's tasks) without reading them.

        ``scale`` is GradScaler's scale at this step, copied, since the scaler updates it in place.
        """
        tasks = self.streams[stream].tasks
        self._losses.append(torch.stack([losses[task].detach().reshape(()) for task in tasks]).double())
        extras = [value.detach().reshape(1).double() for value in (gradient_norm, scale) if value is not None]
        if extras:
            self._extras.append(torch.cat(extras))
        self._pending.append((number, stream, gradient_norm is not None, scale is not None))

    def due(self, last: bool) -> bool:
        """Whether to read out now: every ``every`` steps, at the epoch's ``last`` step, and in one
        process as soon as a stop signal has come."""
        if not self._pending:
            return False
        regular = last or len(self._pending) >= self.every
        return regular or (not self.world.distributed and stop_requested() is not None)

    def read(self) -> tuple[list[ReadStep], int | None]:
        """The recorded steps' values on the host (in one copy), and the stop signal the ranks agreed on."""
        if not self._pending:
            return [], None
        losses = torch.cat(self._losses)
        extras = torch.cat(self._extras) if self._extras else losses.new_zeros(0)
        values, stop = self.world.read_out(losses, extras)
        steps = []
        loss_values, extra_values = values[: losses.numel()], iter(values[losses.numel():])
        start = 0
        for number, stream, has_norm, has_scale in self._pending:
            tasks = self.streams[stream].tasks
            step_losses = dict(zip(tasks, loss_values[start: start + len(tasks)]))
            start += len(tasks)
            norm = next(extra_values) if has_norm else None
            scale = next(extra_values) if has_scale else 1.0
            steps.append(ReadStep(number, stream, step_losses, norm, scale))
        self._pending, self._losses, self._extras = [], [], []
        return steps, stop


def scale_of(scaler: torch.amp.GradScaler) -> torch.Tensor | None:
    """GradScaler's scale at this step as a device tensor (``get_scale()`` would wait for the device), or
    ``None`` when the scaler is off; a copy, since ``scaler.update()`` changes it in place."""
    scale = scaler._get_scale_async() if scaler.is_enabled() else None  # torch's own read that does not wait
    return None if scale is None else scale.detach().clone()


class Advancing(Protocol):
    def advance(self, stream: int, losses: dict[str, float]) -> None: ...


def tally(steps: Sequence[ReadStep], loss_sums: dict[str, float], loss_counts: dict[str, int],
          gradient_norms: GradientNorms, bar: Advancing, *, epoch: int, checkpoint: Path) -> None:
    """Add read-out steps to the epoch's loss sums, gradient norms and progress bar, step by step in order.

    Raises:
        TrainingError: a step's loss is not finite (naming its task and step; the run stops there).
    """
    for step in steps:
        stop_on_non_finite(step.losses, epoch=epoch, step=step.number, checkpoint=checkpoint)
        for task, value in step.losses.items():
            loss_sums[task] += value
            loss_counts[task] += 1
        if step.gradient_norm is not None:
            gradient_norms.add(step.stream, step.gradient_norm, step.scale)
        bar.advance(step.stream, step.losses)
