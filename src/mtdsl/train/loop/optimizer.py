"""The optimizer, built from the spec's config: one instance for the whole run.

Frozen parameters simply have no gradient in their phase, and PyTorch's
optimizers skip those, so phases never rebuild the optimizer (its state, e.g.
momentum, carries over). Biases, norm weights and learned loss weights get no
weight decay, as in timm's ``param_groups_weight_decay``. A spec's ``lr_scale``
splits the groups further by each part's learning-rate factor, which
:func:`set_learning_rate` multiplies into the schedule's rate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from mtdsl.graph.parts import factor_of
from mtdsl.spec.registry import Builders, Config
from mtdsl.spec.training import OPTIMIZERS, AdamWConfig, OptimizerConfig, SgdConfig
from mtdsl.train.loop.freezing import Phase

#: ``builder(config, parameter_groups) -> torch.optim.Optimizer`` per optimizer kind.
OPTIMIZER_BUILDERS: Builders[Callable[[Config, list[dict]], torch.optim.Optimizer]] = Builders(OPTIMIZERS)


def parameter_groups(model: nn.Module, extra: nn.Module | None, weight_decay: float,
                     phases: Sequence[Phase] = ()) -> list[dict]:
    """Decayed and undecayed parameters, split further by their learning-rate factor in each phase.

    A group's ``lr_scales`` maps each phase's name to its factor (``lr_scale``); without scales
    there are exactly two groups, as before ``lr_scale`` existed, so older checkpoints still load.
    """
    groups: dict[tuple[bool, tuple[float, ...]], list[nn.Parameter]] = {}
    ones = tuple(1.0 for _ in phases)
    groups[(True, ones)], groups[(False, ones)] = [], []
    factors = [dict(phase.lr_scales) for phase in phases]
    for name, parameter in model.named_parameters():
        scales = tuple(factor_of(name, phase_factors) for phase_factors in factors)
        groups.setdefault((parameter.ndim > 1, scales), []).append(parameter)
    if extra is not None:
        groups[(False, ones)] += list(extra.parameters())
    return [{"params": params, "weight_decay": weight_decay if decay else 0.0,
             **({"lr_scales": dict(zip((p.name for p in phases), scales))} if scales != ones else {})}
            for (decay, scales), params in groups.items() if params or scales == ones]


def build_optimizer(config: OptimizerConfig, model: nn.Module, weighting: nn.Module | None = None,
                    phases: Sequence[Phase] = ()) -> torch.optim.Optimizer:
    """An optimizer over ``model`` (and the weighting's learnable parameters, if any).

    ``phases`` give parts of the model their own learning-rate factors (:func:`use_phase_scales`).
    """
    return OPTIMIZER_BUILDERS.build(config, parameter_groups(model, weighting, config.weight_decay, phases))


def use_phase_scales(optimizer: torch.optim.Optimizer, phase: Phase) -> None:
    """From now on, :func:`set_learning_rate` gives each group ``phase``'s factor of the schedule's rate."""
    for group in optimizer.param_groups:
        group["lr_scale"] = group.get("lr_scales", {}).get(phase.name, 1.0)


@OPTIMIZER_BUILDERS.register("sgd")
def _sgd(config: SgdConfig, groups: list[dict]) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


@OPTIMIZER_BUILDERS.register("adamw")
def _adamw(config: AdamWConfig, groups: list[dict]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The schedule's ``lr`` in every group, times the group's ``lr_scale`` (:func:`use_phase_scales`)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"] if "lr_scale" in group else lr
