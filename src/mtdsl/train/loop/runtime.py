"""Small helpers the generated ``train.py`` calls, each too dull to spell out in every loop."""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from mtdsl.errors import ArtefactError, RunFailed
from mtdsl.kinds import TASK_KINDS
from mtdsl.spec.streams import Stream
from mtdsl.train.data.tasks import TaskLabels


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's generators (data order and augmentation have their own seeds)."""
    random.seed(seed)
    torch.manual_seed(seed)


def load_generated(path: Path) -> ModuleType:
    """A generated ``model.py`` or ``train.py``, imported afresh under a name unique to its path."""
    if not path.is_file():
        raise ArtefactError(f"{path} is missing", hint="run `mtdsl compile SPEC --out <its folder>` to regenerate it")
    module_name = f"mtdsl_generated_{path.stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None, f"{path} is a .py file, which Python can import"
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_model_class(path: Path) -> type[torch.nn.Module]:
    """The ``Model`` class of a generated ``model.py``."""
    return load_generated(path).Model


def num_outputs(labels: TaskLabels) -> int:
    classes = labels.classes if isinstance(labels.classes, int) else len(labels.classes or ())
    return TASK_KINDS[labels.kind].num_outputs(classes)


def class_names(labels: TaskLabels) -> tuple[str, ...] | None:
    """The task's class names, or ``None`` where the spec gave a count or the task is binary."""
    return labels.classes if isinstance(labels.classes, tuple) else None


def stop_on_non_finite(losses: Mapping[str, float], *, epoch: int, step: int, checkpoint: Path) -> None:
    """Stop with a clear message when a task's loss is NaN or infinite; the last checkpoint is kept."""
    for task, value in losses.items():
        if not math.isfinite(value):
            kept = f"the last good state is {checkpoint} (resume with --resume)" if checkpoint.exists() else \
                "no checkpoint was written yet"
            raise RunFailed(
                f"the loss of task '{task}' became {value} at epoch {epoch}, step {step}; {kept}",
                hint="lower the learning rate, add grad_clip = 1.0 to train { }, or use precision = fp32",
            )


def realised_ratios(draws: Sequence[int], streams: Sequence[Stream]) -> dict[str, float]:
    """How often each stream was actually drawn in an epoch's ``draws``."""
    counts = Counter(draws)
    return {stream.label: counts[i] / len(draws) for i, stream in enumerate(streams)}


def images_per_task(draws: Sequence[int], streams: Sequence[Stream],
                    shares: Sequence[Mapping[str, float]] | None = None) -> dict[str, int]:
    """How many training images each task is shown in an epoch of ``draws``: steps × its stream's batch size ×
    the share of the stream's examples that label the task (``shares``, per stream; 1 where not given).

    A joint stream's batches go through its merged photos in shuffled passes, so a task is shown its share
    of them: ``mtdsl compare --train`` gives its single-task model that many images, not the photos
    that taught it nothing.

    >>> joint = Stream(("a", "b"), ("x", "y"), 8, parts=(Stream(("a",), ("x",), 8), Stream(("b",), ("y",), 8)))
    >>> images_per_task([0] * 10, [joint], [{"x": 1.0, "y": 0.25}])
    {'x': 80, 'y': 20}
    """
    counts = Counter(draws)
    return {task: round(counts[i] * stream.batch_size * (shares[i][task] if shares else 1.0))
            for i, stream in enumerate(streams) for task in stream.tasks}


def epoch_line(draws: Sequence[int], streams: Sequence[Stream], sizes: Sequence[int], epoch: str) -> str:
    """What one epoch is: its steps, and per stream the images its tasks see and the passes over its data.

    >>> print(epoch_line([0, 0, 1], [Stream(("a",), ("x", "y"), 8), Stream(("b",), ("z",), 4)], [16, 4], "passes"))
    an epoch (one pass over every stream): 3 steps · x, y: 16 images (1.00× a) · z: 4 images (1.00× b)
    """
    counts = Counter(draws)
    what = "one pass over every stream" if epoch == "passes" else "Σ|X|·α/B, the thesis' Algorithm 1"
    parts = [f"{', '.join(stream.tasks)}: {counts[i] * stream.batch_size} images "
             f"({counts[i] * stream.batch_size / sizes[i]:.2f}× {stream.dataset})"
             for i, stream in enumerate(streams)]
    return f"an epoch ({what}): {len(draws)} steps · " + " · ".join(parts)


def main_values(results: Mapping[str, Mapping[str, float]], mains: Mapping[str, str]) -> dict[str, float]:
    return {task: metrics[mains[task]] for task, metrics in results.items()}


def stream_means(results: Mapping[str, Mapping[str, float]], mains: Mapping[str, str],
                 streams: Sequence[Stream]) -> dict[int, float]:
    """Each stream's mean main validation metric over its tasks (what dynamic sampling reacts to)."""
    means = {}
    for index, stream in enumerate(streams):
        values = [results[t][mains[t]] for t in stream.tasks if t in results and not math.isnan(results[t][mains[t]])]
        if values:
            means[index] = sum(values) / len(values)
    return means


def to_float(output: Any) -> Any:
    """A head's output in float32 (autocast may leave it half): a tensor, or a tuple of them (detection)."""
    if isinstance(output, tuple):
        return tuple(part.float() for part in output)
    return output.float()
