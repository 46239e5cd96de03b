"""Training: the parts the generated ``train.py`` is built from, in five rooms.

* :mod:`mtdsl.train.data`: what each task reads (sources, COCO files, masks, the synthetic
  shapes), transforms and the letterbox, splits and datasets, batching and the loaders;
* :mod:`mtdsl.train.metrics`: streaming evaluation metrics per task kind and the
  model-selection score;
* :mod:`mtdsl.train.loop`: what one step and one epoch need: task sampling, loss weighting,
  the learning-rate schedule, freezing phases, optimizer, precision, budget, evaluation,
  the progress bar and the small helpers the loop calls;
* :mod:`mtdsl.train.run`: what a run leaves behind and answers for: its folder and lock,
  its fingerprints and checkpoints, stop signals, the metrics log and results, the drawn
  predictions.
* :mod:`mtdsl.train.parallel`: several processes under torchrun: the world (rank,
  collectives, what the ranks decide together) and one DistributedDataParallel per stream.
"""

import importlib
import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    """This package, callable as :func:`mtdsl.api.train`.

    ``mtdsl.train(...)`` is the Python API's training function, and ``mtdsl.train`` is also
    this package: once any of its modules is imported, Python sets the package as the
    attribute ``train`` of ``mtdsl``. Calling the package hands the call to the API, so the two
    never get in each other's way.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # By name: the API sits above this layer (tests/test_import_direction.py).
        return importlib.import_module("mtdsl.api").train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
