"""Phases: which modules are frozen during which epochs.

The graph pass :func:`mtdsl.graph.freeze.mark_frozen` decides *what* a phase
freezes (by name, never by position); this module applies it to a live model.
A frozen module gets ``requires_grad = False`` on its parameters and its
BatchNorm layers stay in eval mode, so their running statistics do not move
either. A phase with ``batchnorm = eval`` keeps the backbones' BatchNorm layers
(and their copies at branch points) in eval mode: each normalises with its
running statistics (ImageNet's, for a pretrained backbone), which stay as they
are, while its scale and shift still train where the phase does not freeze
them. Necks' and heads' BatchNorm layers go on learning their statistics: they
start from PyTorch's (mean 0, variance 1), and after a short heads-only phase
these can still be far from the true ones (a BiFPN's inputs with variance 1e-5
against a running variance of 0.07 after 26 updates, docs/experiments.md (c)),
so keeping them would freeze a head that predicts one class. Parameters without
gradients are skipped by PyTorch's optimizers, so one optimizer serves every
phase.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import networkx as nx
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mtdsl.graph.parts import module_factors
from mtdsl.spec.finetune import batchnorm_of, lr_scale_of
from mtdsl.spec.model import ModelSpec
from mtdsl.spec.training import PhaseSpec, TrainSpec


@dataclass(frozen=True)
class Phase:
    """A stretch of epochs and the module paths (``backbone.trunk.stem``, ``heads.a``) it freezes."""

    name: str
    epochs: int
    frozen: tuple[str, ...] = field(default_factory=tuple)
    lr: float | None = None
    batchnorm: str = "train"
    #: ``(module path, factor)``: the learning rate of the parameters in each module, times the schedule's.
    lr_scales: tuple[tuple[str, float], ...] = ()


def phases_of(graph: nx.DiGraph, train: TrainSpec, model: ModelSpec) -> list[Phase]:
    """The spec's phases with the modules each freezes; one phase named ``train`` when it declares none.

    A phase's ``lr_scale`` applies after the train block's, so where both name a part the phase's wins.
    ``auto`` settings are resolved for ``model``'s backbones (:mod:`mtdsl.spec.finetune`).
    """
    lr_scale = lr_scale_of(train, model)

    def scales(phase: PhaseSpec | None) -> tuple[tuple[str, float], ...]:
        targets = [*(lr_scale.targets if lr_scale else []),
                   *(phase.lr_scale.targets if phase is not None and phase.lr_scale else [])]
        return tuple(module_factors(graph, targets).items())

    if not train.phases:
        return [Phase("train", train.epochs, batchnorm=batchnorm_of(train, None, model), lr_scales=scales(None))]
    return [
        Phase(
            phase.name,
            phase.epochs,
            tuple(data["module"] for _, data in graph.nodes(data=True) if phase.name in data.get("frozen_in", [])),
            phase.lr,
            batchnorm_of(train, phase, model),
            scales(phase),
        )
        for phase in train.phases
    ]


def phase_at(phases: Sequence[Phase], epoch: int) -> Phase:
    """The phase that epoch ``epoch`` (0-based) belongs to."""
    start = 0
    for phase in phases:
        if epoch < start + phase.epochs:
            return phase
        start += phase.epochs
    return phases[-1]


#: Where a model keeps backbone layers, the ones with pretrained statistics: the backbones
#: (``backbone.trunk``) and the copies of their segments made at branch points (``branches.b``).
BACKBONES = ("backbone.", "branches.")


def apply_phase(model: nn.Module, phase: Phase) -> None:
    """Put ``model`` in training mode with exactly ``phase.frozen`` frozen (and BatchNorm as the phase says)."""
    model.train()
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    for path in phase.frozen:
        module = model.get_submodule(path)
        for parameter in module.parameters():
            parameter.requires_grad_(False)
        for layer in module.modules():
            if isinstance(layer, _BatchNorm):
                layer.eval()
    if phase.batchnorm == "eval":
        for name, layer in model.named_modules():
            if name.startswith(BACKBONES) and isinstance(layer, _BatchNorm):
                layer.eval()
