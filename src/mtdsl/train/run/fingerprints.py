"""A run's identity: the fingerprints its checkpoints carry, so a run resumes or is evaluated only with its own spec.

``spec_hash`` covers everything the spec says (model, data and training): resuming
needs it to match. ``model_hash`` covers the module structure alone (which modules
exist, under which names): evaluating and predicting need that to match, so a
spec whose training settings changed still loads its weights.

>>> len(fingerprint("model demo"))
16
"""

from __future__ import annotations

import copy
import hashlib

import networkx as nx

from mtdsl.graph.serialize import graph_to_json
from mtdsl.spec.document import Spec

__all__ = ["fingerprint", "model_hash", "spec_hash"]


def fingerprint(text: str) -> str:
    """The first 16 hex digits of ``text``'s SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def spec_hash(spec: Spec) -> str:
    """A fingerprint of everything the spec says (model, data and training)."""
    parts = [spec.model.model_dump_json(), spec.train.model_dump_json()]
    parts += [f"{name}={config.model_dump_json()}" for name, config in sorted(spec.datasets.items())]
    return fingerprint("\n".join(parts))


def model_hash(graph: nx.DiGraph) -> str:
    """A fingerprint of the module structure alone: phases, weights' origin and names do not count."""
    structure = copy.deepcopy(graph)
    for _, data in structure.nodes(data=True):
        data.pop("frozen_in", None)
    for key in ("phases", "name"):
        structure.graph.pop(key, None)
    for config in structure.graph.get("backbones", {}).values():
        config.pop("pretrained", None)
    return fingerprint(graph_to_json(structure))
