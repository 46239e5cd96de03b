"""Task sampling: which stream each training step draws its batch from.

One strategy per spec, registered under the same key as its config in
:data:`mtdsl.spec.training.SAMPLERS`. A strategy turns the training progress
into an epoch's *draws*: the ordered list of stream indices for that epoch's
steps, each stream's share of them as close to its ratio ``α_i`` as whole
steps allow. How many steps an epoch has is the spec's ``epoch``:

* ``passes`` (the default): ``Σ |X_i| / B_i``, as many batches as one pass over
  every stream's data takes, where ``|X_i|`` is stream ``i``'s training-set size
  and ``B_i`` its batch size. Under proportional sampling every stream is seen
  once per epoch, as a single-task epoch sees its dataset once;
* ``weighted``: ``Σ |X_i| α_i / B_i``, the thesis' Algorithm 1. Under
  proportional sampling two equal datasets then get half a pass each.

A caller may instead fix how many images an epoch draws (``images``, the budget
``mtdsl compare --train`` gives a single-task model): the draws then have
``images / Σ α_i B_i`` steps, shared out by the same ratios.

An epoch's draws follow from ``(seed, epoch)``, so they are the same after a resume;
only ``dynamic`` carries state (its current ratios).

>>> from mtdsl.spec.training import ProportionalSampling
>>> def draws(epoch):
...     return TaskSampler.create(ProportionalSampling(), sizes=[300, 100], batch_sizes=[10, 10],
...                               ratios_by_stream=None, seed=0, epoch=epoch).draws(epoch=0, progress=0.0)
>>> len(draws("passes")), draws("passes").count(0), len(draws("weighted"))
(40, 30, 25)
>>> TaskSampler.create(ProportionalSampling(), sizes=[300, 100], batch_sizes=[10, 10], ratios_by_stream=None,
...                    seed=0).draws(epoch=0, progress=0.0, images=600).count(0)
45
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from mtdsl.spec.registry import Builders, Config
from mtdsl.spec.training import SAMPLERS, DynamicSampling, Ramp
from mtdsl.train.data.batching import seeded_generator

Ratios = list[float]
PLANNERS: Builders[Callable[..., TaskSampler]] = Builders(SAMPLERS)
register_sampler = PLANNERS.register


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


def cycle_until(draws: Sequence[int], batch_sizes: Sequence[int], images: int) -> list[int]:
    """``draws`` repeated as often as needed, up to the step that comes closest to ``images`` (one at least)."""
    steps: list[int] = []
    drawn = 0
    while not steps or drawn + batch_sizes[draws[len(steps) % len(draws)]] / 2 <= images:
        stream = draws[len(steps) % len(draws)]
        steps.append(stream)
        drawn += batch_sizes[stream]
    return steps


#: What one epoch is (the spec's ``epoch``): see the module docstring.
EPOCH_LENGTHS = ("passes", "weighted")


class TaskSampler:
    """Base strategy: an epoch of :meth:`steps` steps, each stream's share as close to
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
        epoch: ``passes`` or ``weighted`` (:data:`EPOCH_LENGTHS`).
    """

    def __init__(self, config: Config, sizes: Sequence[int], batch_sizes: Sequence[int],
                 ratios_by_stream: Sequence[float | Ramp] | None, seed: int, epoch: str = "passes") -> None:
        if epoch not in EPOCH_LENGTHS:
            raise ValueError(f"epoch must be one of {EPOCH_LENGTHS}, got {epoch!r}")
        self.config = config
        self.sizes = list(sizes)
        self.batch_sizes = list(batch_sizes)
        self.ratios_by_stream = ratios_by_stream
        self.seed = seed
        self.epoch = epoch

    @staticmethod
    def create(config: Config, **kwargs) -> TaskSampler:
        return PLANNERS[config.kind](config, **kwargs)

    def ratios(self, progress: float) -> Ratios:
        raise NotImplementedError

    def steps(self, ratios: Ratios, images: int | None = None) -> int:
        """Steps in an epoch at these ratios: ``Σ |X_i| / B_i`` (``passes``) or ``Σ |X_i| α_i / B_i`` (``weighted``);
        for a budget of ``images``, as many steps as draw that many images at these ratios."""
        if images is not None:
            return max(1, round(images / sum(a * b for a, b in zip(ratios, self.batch_sizes))))
        weights = ratios if self.epoch == "weighted" else [1.0] * len(ratios)
        return max(1, round(sum(n * a / b for n, a, b in zip(self.sizes, weights, self.batch_sizes))))

    def draws(self, epoch: int, progress: float, images: int | None = None) -> list[int]:
        """The streams of ``epoch``'s steps, in order; ``images`` overrides the epoch's length (see the module)."""
        ratios = self.ratios(progress)
        counts = apportion(ratios, self.steps(ratios, images))
        draws = torch.tensor([stream for stream, count in enumerate(counts) for _ in range(count)])
        order = torch.randperm(len(draws), generator=seeded_generator(self.seed, 7919, epoch))
        return draws[order].tolist()

    def observe(self, main_metrics: dict[int, float]) -> None:
        """Validation results per stream after an epoch; only ``dynamic`` uses them."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@register_sampler("proportional")
class Proportional(TaskSampler):
    """Streams in proportion to their size in batches, ``|X_i| / B_i``: every dataset is gone through at the
    same pace (with equal batch sizes, in proportion to its images, as the thesis samples)."""

    def ratios(self, progress: float) -> Ratios:
        return normalised([n / b for n, b in zip(self.sizes, self.batch_sizes)])


@register_sampler("equal")
class Equal(TaskSampler):
    def ratios(self, progress: float) -> Ratios:
        return [1 / len(self.sizes)] * len(self.sizes)


@register_sampler("fixed")
class Fixed(TaskSampler):
    def ratios(self, progress: float) -> Ratios:
        assert self.ratios_by_stream is not None  # a fixed sampler is built with the spec's ratios
        return normalised([ramp_value(r, progress) for r in self.ratios_by_stream])


@register_sampler("round_robin")
class RoundRobin(TaskSampler):
    """Streams take turns; one epoch is one pass over every stream's data."""

    def ratios(self, progress: float) -> Ratios:
        return [1 / len(self.sizes)] * len(self.sizes)

    def draws(self, epoch: int, progress: float, images: int | None = None) -> list[int]:
        steps = sum(math.ceil(n / b) for n, b in zip(self.sizes, self.batch_sizes))
        draws = [step % len(self.sizes) for step in range(steps)]
        return draws if images is None else cycle_until(draws, self.batch_sizes, images)


@register_sampler("sequential")
class Sequential(TaskSampler):
    """Whole datasets one after another, every epoch (the failure mode of thesis §6.3)."""

    def ratios(self, progress: float) -> Ratios:
        return normalised([math.ceil(n / b) for n, b in zip(self.sizes, self.batch_sizes)])

    def draws(self, epoch: int, progress: float, images: int | None = None) -> list[int]:
        draws = [i for i, (n, b) in enumerate(zip(self.sizes, self.batch_sizes)) for _ in range(math.ceil(n / b))]
        return draws if images is None else cycle_until(draws, self.batch_sizes, images)


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
        assert isinstance(self.config, DynamicSampling)  # registered under "dynamic", so built from its config
        softmax = torch.softmax(gaps / self.config.temperature, dim=0).tolist()
        floor = self.config.floor
        self.current = [floor / len(softmax) + (1 - floor) * s for s in softmax]

    def state_dict(self) -> dict:
        return {"current": list(self.current)}

    def load_state_dict(self, state: dict) -> None:
        self.current = list(state["current"])



@register_sampler("joint")
class Joint(TaskSampler):
    """The one stream of merged photos (:func:`mtdsl.spec.streams.plan_streams`): an epoch is a pass over them."""

    def ratios(self, progress: float) -> Ratios:
        return [1 / len(self.sizes)] * len(self.sizes)
