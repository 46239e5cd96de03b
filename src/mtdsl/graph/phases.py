"""The spec's phases as the training loop runs them: each one's epochs, the modules it freezes and its rates.

Which modules a phase freezes is decided on the graph (:func:`mtdsl.graph.freeze.mark_frozen`),
by name, never by position; :mod:`mtdsl.train.loop.freezing` applies a phase to a live
model. Torch-free, so ``mtdsl compile`` writes ``PHASES`` into ``train.py`` without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import networkx as nx

from mtdsl.graph.facts import every_fact
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
            tuple(record.module for record in every_fact(graph).values() if phase.name in record.frozen_in),
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
