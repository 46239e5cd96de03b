"""Loss weighting: how the losses of the tasks in one step become one scalar.

Each method is an ``nn.Module`` registered under its config's key in
:data:`mtdsl.spec.training.WEIGHTINGS`; add one with :func:`register_weighting`.
Every method multiplies by the tasks' constant ``weight`` from the spec too.
Weighting runs in float32, outside autocast.

>>> import torch
>>> from mtdsl.spec.training import ConstantWeighting
>>> combine = build_weighting(ConstantWeighting(), {"a": 1.0, "b": 0.5})
>>> combine({"a": torch.tensor(2.0), "b": torch.tensor(2.0)})
tensor(3.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from mtdsl.spec.registry import Builders, Config
from mtdsl.spec.training import WEIGHTINGS, DwaWeighting

WEIGHTING_METHODS: Builders[Callable[[Config, dict[str, float]], Weighting]] = Builders(WEIGHTINGS)
register_weighting = WEIGHTING_METHODS.register


def build_weighting(config: Config, weights: dict[str, float]) -> Weighting:
    """The weighting method for a spec's ``weighting`` config and its tasks' constant weights."""
    return WEIGHTING_METHODS.build(config, weights)


class Weighting(nn.Module):
    """Base: ``Σ_i w_i · L_i`` over the tasks present in the step."""

    def __init__(self, config: Config, weights: dict[str, float]) -> None:
        super().__init__()
        self.config = config
        self.constant = dict(weights)

    def factors(self) -> dict[str, float]:
        """Each task's current multiplier, for logging."""
        return dict(self.constant)

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        factors = self.factors()
        return cast(torch.Tensor, sum(factors[task] * loss.float() for task, loss in losses.items()))

    def end_epoch(self, epoch_losses: dict[str, float]) -> None:
        """The epoch's mean loss per task; methods that adapt between epochs read it."""


@register_weighting("constant")
class ConstantWeights(Weighting):
    pass


@register_weighting("uncertainty")
class UncertaintyWeights(Weighting):
    """Learned homoscedastic uncertainty (Kendall, Gal & Cipolla 2018), classification form.

    With a learnable log-variance ``s_i = log σ_i²`` per task::

        L = Σ_i w_i · (exp(-s_i) · L_i + s_i / 2)

    ``s_i`` starts at 0 (factor 1) and settles where ``exp(-s_i) · L_i = 1/2``, so
    tasks with larger losses are weighted down. The log-variances are parameters
    of this module, trained by the same optimizer as the model (no weight decay).
    """

    def __init__(self, config: Config, weights: dict[str, float]) -> None:
        super().__init__(config, weights)
        self.log_variance = nn.ParameterDict({task: nn.Parameter(torch.zeros(())) for task in weights})

    def factors(self) -> dict[str, float]:
        return {task: self.constant[task] * math.exp(-s.item()) for task, s in self.log_variance.items()}

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        total: torch.Tensor | float = 0.0
        for task, loss in losses.items():
            s = self.log_variance[task]
            total = total + self.constant[task] * (torch.exp(-s) * loss.float() + s / 2)
        return cast(torch.Tensor, total)


@register_weighting("dwa")
class DynamicWeightAverage(Weighting):
    """Dynamic weight average (Liu, Johns & Davison 2019): gradient-free, adapts once per epoch.

    With ``r_i = L_i(t-1) / L_i(t-2)``, the ratio of a task's last two epoch losses::

        λ_i(t) = K · exp(r_i / T) / Σ_j exp(r_j / T)

    ``K`` is the number of tasks and ``T`` the temperature. For the first two
    epochs ``λ_i = 1``. A task whose loss falls slowly gets more weight.
    """

    def __init__(self, config: Config, weights: dict[str, float]) -> None:
        super().__init__(config, weights)
        self.history: list[dict[str, float]] = []
        self.dynamic = {task: 1.0 for task in weights}

    def factors(self) -> dict[str, float]:
        return {task: self.constant[task] * self.dynamic[task] for task in self.constant}

    def end_epoch(self, epoch_losses: dict[str, float]) -> None:
        self.history = (self.history + [dict(epoch_losses)])[-2:]
        if len(self.history) < 2:
            return
        previous, last = self.history
        tasks = [t for t in self.constant if t in previous and t in last and previous[t] > 0]
        if not tasks:
            return
        rates = torch.tensor([last[t] / previous[t] for t in tasks], dtype=torch.float64)
        assert isinstance(self.config, DwaWeighting)  # registered under "dwa", so built from its config
        scaled = len(tasks) * torch.softmax(rates / self.config.temperature, dim=0)
        self.dynamic.update({t: float(v) for t, v in zip(tasks, scaled)})

    def get_extra_state(self) -> dict:
        return {"history": self.history, "dynamic": self.dynamic}

    def set_extra_state(self, state: dict) -> None:
        self.history = [dict(h) for h in state["history"]]
        self.dynamic = dict(state["dynamic"])
