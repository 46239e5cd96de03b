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

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mtdsl.graph.phases import Phase, phase_at, phases_of

__all__ = ["Phase", "apply_phase", "phase_at", "phases_of"]


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
