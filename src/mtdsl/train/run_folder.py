"""Where a run keeps its files.

::

    runs/q1/
      spec.mtl              the spec as it was when training started
      model.py, train.py    the generated model and training loop
      graph.json, architecture.{dot,svg,png}, summary.json
      metrics.jsonl         one JSON line per epoch: train losses, sampling ratios, validation metrics
      checkpoints/last.pt   written after every epoch (atomic)
      checkpoints/best.pt   the epoch with the best mean validation metric
      plots/losses.png, plots/metrics.png, plots/sampling.png
      test.json, test.md    the final per-task results on the test split
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunFolder:
    root: Path

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def last(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "checkpoints" / "best.pt"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def results(self) -> Path:
        return self.root / "test"
