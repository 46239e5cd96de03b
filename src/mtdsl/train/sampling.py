"""Task sampling: which stream each training step draws its batch from.

One strategy per spec, registered under the same key as its config in
:data:`mtdsl.spec.training.SAMPLERS`. A strategy turns the training progress
into an epoch *plan*: the ordered list of stream indices for that epoch's
steps. One epoch has ``Σ |X_i| α_i / B_i`` steps (thesis Algorithm 1), where
``|X_i|`` is stream ``i``'s training-set size, ``α_i`` its ratio and ``B_i``
its batch size. Plans are drawn from ``(seed, epoch)``, so they are the same
after a resume; only ``dynamic`` carries state (its current ratios).

>>> from mtdsl.spec.training import ProportionalSampling
>>> sampler = TaskSampler.create(ProportionalSampling(), sizes=[300, 100], batch_sizes=[10, 10],
...                              ratios_by_stream=None, seed=0)
>>> plan = sampler.plan(epoch=0, progress=0.0)
>>> len(plan), round(plan.count(0) / len(plan), 1)
(25, 0.8)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from mtdsl.spec.registry import Config
from mtdsl.spec.training import DynamicSampling, Ramp
from mtdsl.train.batching import seeded_generator

Ratios = list[float]
PLANNERS: dict[str, Callable[..., TaskSampler]] = {}


def register_sampler(kind: str):
    def decorate(cls):
        PLANNERS[kind] = cls
        return cls

    return decorate


def normalised(values: Sequence[float]) -> Ratios:
    total = sum(values)
    return [v / total for v in values]


def ramp_value(ratio: float | Ramp, progress: float) -> float:
    """A fixed ratio, or a ramp's value at ``progress`` (0 at the start of training, 1 at the end)."""
    if isinstance(ratio, Ramp):
        return ratio.start + (ratio.end - ratio.start) * progress
    return ratio


def apportion(ratios: Sequence[float], steps: int) -> list[int]:
    """Whole step counts in proportion to ``ratios`` that sum to ``steps`` (largest remainders)."""
    exact = [ratio * steps for ratio in ratios]
    counts = [math.floor(value) for value in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: steps - sum(counts)]:
        counts[i] += 1
    return counts


class TaskSampler:
    """Base strategy: ``Σ |X_i| α_i / B_i`` steps per epoch, each stream's share as close to
    ``α_i`` as whole steps allow, in a random order drawn from ``(seed, epoch)``.

    Drawing the counts exactly rather than i.i.d. (as the thesis' Algorithm 1
    does) keeps the realised ratios of short epochs on target; the order is
    still random.

    Args:
        config: the spec's sampling config.
        sizes: training-set size per stream.
        batch_sizes: batch size per stream.
        ratios_by_stream: per stream, its ratio (or ramp) for ``fixed``; else ``None``.
        seed: the run's seed.
    """

    def __init__(self, config: Config, sizes: Sequence[int], batch_sizes: Sequence[int],
                 ratios_by_stream: Sequence[float | Ramp] | None, seed: int) -> None:
        self.config = config
        self.sizes = list(sizes)
        self.batch_sizes = list(batch_sizes)
        self.ratios_by_stream = ratios_by_stream
        self.seed = seed

    @staticmethod
    def create(config: Config, **kwargs) -> TaskSampler:
        return PLANNERS[config.kind](config, **kwargs)

    def ratios(self, progress: float) -> Ratios:
        raise NotImplementedError

    def steps(self, ratios: Ratios) -> int:
        return max(1, round(sum(n * a / b for n, a, b in zip(self.sizes, ratios, self.batch_sizes))))

    def plan(self, epoch: int, progress: float) -> list[int]:
        ratios = self.ratios(progress)
        counts = apportion(ratios, self.steps(ratios))
        plan = torch.tensor([stream for stream, count in enumerate(counts) for _ in range(count)])
        order = torch.randperm(len(plan), generator=seeded_generator(self.seed, 7919, epoch))
        return plan[order].tolist()

    def observe(self, main_metrics: dict[int, float]) -> None:
        """Validation results per stream after an epoch; only ``dynamic`` uses them."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@register_sampler("proportional")
class Proportional(TaskSampler):
    def ratios(self, progress: float) -> Ratios:
        return normalised(self.sizes)


@register_sampler("equal")
class Equal(TaskSampler):
    def ratios(self, progress: float) -> Ratios:
        return [1 / len(self.sizes)] * len(self.sizes)


@register_sampler("fixed")
class Fixed(TaskSampler):
    def ratios(self, progress: float) -> Ratios:
        return normalised([ramp_value(r, progress) for r in self.ratios_by_stream])


@register_sampler("round_robin")
class RoundRobin(TaskSampler):
    """Streams take turns; one epoch is one pass over every stream's data."""

    def ratios(self, progress: float) -> Ratios:
        return [1 / len(self.sizes)] * len(self.sizes)

    def plan(self, epoch: int, progress: float) -> list[int]:
        steps = sum(math.ceil(n / b) for n, b in zip(self.sizes, self.batch_sizes))
        return [step % len(self.sizes) for step in range(steps)]


@register_sampler("sequential")
class Sequential(TaskSampler):
    """Whole datasets one after another, every epoch (the failure mode of thesis §6.3)."""

    def ratios(self, progress: float) -> Ratios:
        return normalised([math.ceil(n / b) for n, b in zip(self.sizes, self.batch_sizes)])

    def plan(self, epoch: int, progress: float) -> list[int]:
        return [i for i, (n, b) in enumerate(zip(self.sizes, self.batch_sizes)) for _ in range(math.ceil(n / b))]


@register_sampler("dynamic")
class Dynamic(TaskSampler):
    """Streams furthest below their target are sampled more (thesis §6.3's proposal).

    After each validation, with gap ``g_i = max(0, (target_i - metric_i) / target_i)``::

        α_i = floor / n + (1 - floor) · softmax(g / temperature)_i

    Before the first validation the ratios are proportional to dataset size.

    Args:
        targets: per stream, the target metric (the mean of its tasks' targets).
    """

    def __init__(self, config: DynamicSampling, *, targets: Sequence[float], **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.targets = list(targets)
        self.current: Ratios = normalised(self.sizes)

    def ratios(self, progress: float) -> Ratios:
        return list(self.current)

    def observe(self, main_metrics: dict[int, float]) -> None:
        gaps = torch.tensor(
            [max(0.0, (t - main_metrics.get(i, 0.0)) / t) for i, t in enumerate(self.targets)], dtype=torch.float64
        )
        softmax = torch.softmax(gaps / self.config.temperature, dim=0).tolist()
        floor = self.config.floor
        self.current = [floor / len(softmax) + (1 - floor) * s for s in softmax]

    def state_dict(self) -> dict:
        return {"current": list(self.current)}

    def load_state_dict(self, state: dict) -> None:
        self.current = list(state["current"])

