"""mtdsl: a declarative language and compiler for multi-task vision models.

From Python (:mod:`mtdsl.api`; ``docs/python_api.md``)::

    import mtdsl
    compilation = mtdsl.compile("specs/quickstart.mtl")      # .model(): a fresh torch module
    result = mtdsl.train(compilation, out="runs/quickstart")  # run folder, best epoch, test metrics
    trained = mtdsl.load(result.run_dir)                      # eval mode; .predict(images)

``import mtdsl`` loads none of this (and no torch): each name is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: The names ``mtdsl`` forwards to :mod:`mtdsl.api`, imported when first asked for.
API = ("compile", "train", "load", "Compilation", "TrainResult", "TrainedModel")

__all__ = ["__version__", *API]

def __getattr__(name: str) -> Any:
    if name == "train":  # the package mtdsl.train, which calls mtdsl.api.train (see its __init__)
        return importlib.import_module("mtdsl.train")
    if name in API:
        # By name, not an import statement: the package sits below everything it forwards to
        # (tests/test_import_direction.py), and its own import stays as cheap as ``mtdsl --version``
        # needs. Type checkers read the names from __init__.pyi.
        value = getattr(importlib.import_module("mtdsl.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mtdsl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
