"""The gradient's size at the backbone, step by step, summarised per stream and epoch.

In a multi-task model every stream's step moves the shared backbone, so a
task whose gradient there is many times the others' (or spikes) steers it
for everyone: docs/experiments.md (a) traced a collapse of the plants model
to beans' backbone gradient, 2-5x flowers' and spiking to 150-190. The train record of
``metrics.jsonl`` carries each stream's mean and largest norm under
``backbone_gradient_norm``, measured before ``grad_clip`` clips it, in the
loss's units (GradScaler's scale divided out), so runs, streams and
single-task counterparts compare directly.

>>> from torch import nn
>>> model = nn.ModuleDict({"backbone": nn.Linear(2, 1), "head": nn.Linear(1, 1)})
>>> norms = GradientNorms(model, ["a"])
>>> model["head"](model["backbone"](torch.ones(1, 2))).sum().backward()
>>> norms.record(0)
>>> sorted(norms.summary()["a"])
['max', 'mean']
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class GradientNorms:
    """Norms of the gradient over ``model``'s ``backbone.*`` parameters, per stream, for one epoch at a time."""

    def __init__(self, model: nn.Module, labels: Sequence[str]) -> None:
        self.parameters = [parameter for name, parameter in model.named_parameters() if name.startswith("backbone.")]
        self.labels = list(labels)
        self.reset()

    def reset(self) -> None:
        self.sums = [0.0] * len(self.labels)
        self.counts = [0] * len(self.labels)
        self.largest = [0.0] * len(self.labels)

    def record(self, stream: int, scale: float = 1.0) -> None:
        """Add the norm of the backbone's current gradient (divided by ``scale``) to stream ``stream``.

        This reads the norm to the host at once; the training loop instead keeps
        :meth:`measure`'s tensor on the device and hands its value to :meth:`add` at its next read-out.
        """
        norm = self.measure()
        if norm is not None:
            self.add(stream, norm.item(), scale)

    def measure(self) -> torch.Tensor | None:
        """The norm of the backbone's current gradient, on its device (no host sync); ``None`` when frozen."""
        gradients = [parameter.grad for parameter in self.parameters if parameter.grad is not None]
        if not gradients:
            return None
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(gradients)))

    def add(self, stream: int, norm: float, scale: float = 1.0) -> None:
        """Count one step's ``norm`` (in GradScaler's units: ``scale`` is divided out) for stream ``stream``.

        A non-finite norm (a step GradScaler is about to skip) adds nothing.
        """
        norm = norm / scale
        if not math.isfinite(norm):
            return
        self.sums[stream] += norm
        self.counts[stream] += 1
        self.largest[stream] = max(self.largest[stream], norm)

    def summary(self) -> dict[str, dict[str, float]]:
        """``{stream label: {"mean": …, "max": …}}`` for the streams that moved the backbone this epoch."""
        return {label: {"mean": self.sums[i] / self.counts[i], "max": self.largest[i]}
                for i, label in enumerate(self.labels) if self.counts[i]}

    def state_dict(self) -> dict[str, list]:
        return {"sums": list(self.sums), "counts": list(self.counts), "largest": list(self.largest)}

    def load_state_dict(self, state: dict[str, list] | None) -> None:
        """Continue an epoch a stop signal interrupted; ``None`` (an older checkpoint) starts afresh."""
        self.reset()
        if state is not None:
            self.sums, self.counts, self.largest = list(state["sums"]), list(state["counts"]), list(state["largest"])
