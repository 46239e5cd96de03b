"""The optimizer, built from the spec's config: one instance for the whole run.

Frozen parameters simply have no gradient in their phase, and PyTorch's
optimizers skip those, so phases never rebuild the optimizer (its state, e.g.
momentum, carries over). Biases, norm weights and learned loss weights get no
weight decay, as in timm's ``param_groups_weight_decay``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mtdsl.spec.registry import Builders, Config
from mtdsl.spec.training import OPTIMIZERS, AdamWConfig, SgdConfig

#: ``builder(config, parameter_groups) -> torch.optim.Optimizer`` per optimizer kind.
OPTIMIZER_BUILDERS: Builders[Callable[[Config, list[dict]], torch.optim.Optimizer]] = Builders(OPTIMIZERS)


def parameter_groups(model: nn.Module, extra: nn.Module | None, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for parameter in model.parameters():
        (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    if extra is not None:
        no_decay += list(extra.parameters())
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(config: Config, model: nn.Module, weighting: nn.Module | None = None) -> torch.optim.Optimizer:
    """An optimizer over ``model`` (and the weighting's learnable parameters, if any)."""
    return OPTIMIZER_BUILDERS.build(config, parameter_groups(model, weighting, config.weight_decay))


@OPTIMIZER_BUILDERS.register("sgd")
def _sgd(config: SgdConfig, groups: list[dict]) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


@OPTIMIZER_BUILDERS.register("adamw")
def _adamw(config: AdamWConfig, groups: list[dict]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
