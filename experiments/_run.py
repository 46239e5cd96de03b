"""A finished run folder, loaded for a probe: its generated loop, best checkpoint, data and validation."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.loop.evaluation import evaluate
from mtdsl.train.loop.precision import resolve_precision
from mtdsl.train.loop.runtime import load_generated


@dataclass
class LoadedRun:
    loop: ModuleType
    model: torch.nn.Module
    checkpoint: dict
    data: StreamLoaders

    def validation(self) -> dict[str, float]:
        """Each task's main metric on the validation split, rounded to 3 places."""
        precision = resolve_precision("fp32", self.data.device)
        results, mains = evaluate(self.model, self.data, "val", self.loop.OUTPUTS, precision)
        return {task: round(results[task][mains[task]], 3) for task in results}


def _normalised(dataset):
    paths = {key: os.path.normpath(value) for key, value in dict(dataset).items()
             if isinstance(value, str) and "/../" in value}
    return dataset.model_copy(update=paths)


def load_run(run: Path, checkpoint: str = "best.pt") -> LoadedRun:
    """The model of ``run`` with ``checkpoint``'s weights, on CPU, and its datasets.

    Dataset roots are normalised lexically, so a run compiled in a since-removed
    checkout (``/old/specs/real/../../../shared/data``) still finds its data.
    """
    loop = load_generated(run / "train.py")
    loop.DATASETS = {name: _normalised(dataset) for name, dataset in loop.DATASETS.items()}
    device = torch.device("cpu")
    model = loop.build_model(device, load_pretrained=False)
    state = torch.load(run / "checkpoints" / checkpoint, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    data = StreamLoaders(loop.STREAMS, loop.DATASETS, loop.TASKS, image_size=loop.INPUT_SIZE,
                         mean=loop.NORMALIZATION[0], std=loop.NORMALIZATION[1], seed=loop.SEED, workers=0,
                         on_corrupt=loop.ON_CORRUPT, device=device)
    return LoadedRun(loop, model, state, data)
