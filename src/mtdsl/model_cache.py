"""What compiling a model needs torch for, kept per model so that compiling it again needs none.

Three of a compilation's answers come from modules built on the meta device:
each neck's and head's parameter count, the FLOPs of each task, and
``model.py`` (printed from the module plan, whose constructor calls name torch
classes). Importing torch and timm for them takes seconds where the rest of
``mtdsl compile`` takes a fraction of one, and they depend only on the
sharing graph: editing a spec's training settings, datasets or phases leaves
them as they were.

So each is kept in ``model-<key>.json`` in mtdsl's cache folder
(:func:`mtdsl.cache.cache_folder`), under a key that hashes everything they
are computed from: the sharing graph (``graph.json``), the spec's path (which
``model.py`` names), the installed torch and timm versions and mtdsl's own
source. Any change to one of these is a new key, so a kept answer is never
stale; an answer not yet asked for is computed and added when first asked.
As with the backbone cache, a corrupt or unwritable file only costs time.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import networkx as nx

from mtdsl.cache import cache_folder, installed_version
from mtdsl.files import write_atomic
from mtdsl.graph.serialize import graph_to_json

#: The sizes a graph's necks and heads need: the only nodes whose size timm's metadata does not give.
SIZED_KINDS = ("neck", "head")


@functools.lru_cache(maxsize=1)
def source_version() -> str:
    """A hash of every Python file of mtdsl (read as bytes, not imported): a new mtdsl is a new key."""
    digest = hashlib.sha256()
    package = Path(__file__).parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def model_key(graph: nx.DiGraph, spec_path: str) -> str:
    """The key of everything the kept answers are computed from (see the module docstring)."""
    unsized = graph.copy()
    for _, data in unsized.nodes(data=True):
        if data.get("kind") in SIZED_KINDS:
            data.pop("params", None)
    parts = [graph_to_json(unsized), spec_path, installed_version("torch") or "", installed_version("timm") or "",
             source_version()]
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:24]


class ModelFacts:
    """The kept answers of one model, computed on first request and written back to the cache file."""

    def __init__(self, graph: nx.DiGraph, spec_path: str) -> None:
        self.graph = graph
        self.spec_path = spec_path
        folder = cache_folder()
        self.path = folder / f"model-{model_key(graph, spec_path)}.json" if folder is not None else None
        self.entry = self._read()

    def _read(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            entry = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return entry if isinstance(entry, dict) else {}

    def _kept(self, name: str, compute) -> Any:
        if not _well_formed(name, self.entry.get(name)):
            self.entry[name] = compute()
            if self.path is not None:
                try:
                    write_atomic(self.path, json.dumps(self.entry, sort_keys=True) + "\n")
                except OSError:
                    pass
        return self.entry[name]

    def params(self) -> dict[str, int]:
        """The parameter count of each neck and head node."""
        return self._kept("params", self._count_parameters)

    def flops(self) -> dict[str, int]:
        """FLOPs of one image through each task alone and through all (``"all"``)."""
        def count() -> dict[str, int]:
            from mtdsl.nn.cost import count_flops

            return count_flops(self.graph)

        return self._kept("flops", count)

    def model_source(self) -> str:
        """``model.py``."""
        def generate() -> str:
            from mtdsl.codegen.model_source import generate_model_source

            return generate_model_source(self.graph, self.spec_path)

        return self._kept("model_source", generate)

    def _count_parameters(self) -> dict[str, int]:
        from mtdsl.nn.parameters import count_parameters

        sized = count_parameters(self.graph.copy())
        return {node: data["params"] for node, data in sized.nodes(data=True) if data["kind"] in SIZED_KINDS}

    def size_graph(self) -> nx.DiGraph:
        """Set ``params`` on every neck and head node of the graph (in place) and return it."""
        for node, params in self.params().items():
            self.graph.nodes[node]["params"] = params
        return self.graph


def _well_formed(name: str, value: Any) -> bool:
    """A kept answer of the right shape; anything else (a file from elsewhere, a truncated one) is computed again."""
    if name == "model_source":
        return isinstance(value, str)
    return isinstance(value, dict) and all(isinstance(k, str) and type(v) is int for k, v in value.items())

