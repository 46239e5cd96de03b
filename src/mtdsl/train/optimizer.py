"""The optimizer, built from the spec's config: one instance for the whole run.

Frozen parameters simply have no gradient in their phase, and PyTorch's
optimizers skip those, so phases never rebuild the optimizer (its state, e.g.
momentum, carries over). Biases, norm weights and learned loss weights get no
weight decay, as in timm's ``param_groups_weight_decay``.
"""

from __future__ import annotations

import torch
from torch import nn

from mtdsl.spec.registry import Config


def parameter_groups(model: nn.Module, extra: nn.Module | None, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for parameter in model.parameters():
        (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    if extra is not None:
        no_decay += list(extra.parameters())
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(config: Config, model: nn.Module, weighting: nn.Module | None = None) -> torch.optim.Optimizer:
    """An optimizer over ``model`` (and the weighting's learnable parameters, if any)."""
    groups = parameter_groups(model, weighting, config.weight_decay)
    if config.kind == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    if config.kind == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)
    raise ValueError(f"no optimizer for kind {config.kind!r}")


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
