"""A run's identity: the fingerprints its checkpoints carry, so a run resumes or is evaluated only with its own spec.

``spec_hash`` covers everything the spec says (model, data and training): resuming
needs it to match. ``model_hash`` covers the module structure alone (which modules
exist, under which names): evaluating and predicting need that to match, so a
spec whose training settings changed still loads its weights. So does a spec whose
dropout or stochastic-depth rates changed: they act only while training and change
no weight's name or shape (only whether a head has dropout at all does).

>>> len(fingerprint("model demo"))
16
"""

from __future__ import annotations

import copy
import hashlib

import networkx as nx

from mtdsl.graph.serialize import graph_to_json
from mtdsl.spec.document import Spec
from mtdsl.spec.finetune import batchnorm_of, lr_scale_of
from mtdsl.spec.training import TrainSpec

__all__ = ["fingerprint", "model_hash", "spec_hash"]


def fingerprint(text: str) -> str:
    """The first 16 hex digits of ``text``'s SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def spec_hash(spec: Spec) -> str:
    """A fingerprint of everything the spec says (model, data and training), except its trackers.

    ``auto`` settings count as what they resolve to, written as the fields said it before ``auto``
    existed: a spec whose backbone trains from scratch keeps its fingerprint, so its runs resume
    across the change, and one with a pretrained backbone, which now trains differently, does not.
    """
    # Where the numbers are also sent (track) changes no number: a run may resume with a tracker added.
    # A task without its own augment hashes as before tasks could have one, so its runs still resume.
    plain = {name: {"augment"} for name, training in spec.train.tasks.items() if training.augment is None}
    train = _resolved(spec).model_dump_json(exclude={"track": True, "batchnorm": True, "tasks": plain})
    parts = [spec.model.model_dump_json(), train]
    if not spec.train.phases and batchnorm_of(spec.train, None, spec.model) != "train":  # no phase to carry it
        parts.append("batchnorm=eval")
    # A dataset without augment or resize hashes as before they existed, so runs of unchanged specs still resume.
    for name, config in sorted(spec.datasets.items()):
        unset = {key for key in ("augment", "resize") if getattr(config, key) is None}
        parts.append(f"{name}={config.model_dump_json(exclude=unset or None)}")
    return fingerprint("\n".join(parts))


def _resolved(spec: Spec) -> TrainSpec:
    """The train block with ``lr_scale`` and each phase's ``batchnorm`` resolved (:mod:`mtdsl.spec.finetune`)."""
    train, model = spec.train, spec.model
    phases = [phase.model_copy(update={"batchnorm": batchnorm_of(train, phase, model)}) for phase in train.phases]
    return train.model_copy(update={"lr_scale": lr_scale_of(train, model), "phases": phases})


#: A backbone's rates: timm's dropout before its (removed) classifier and its DropPath modules hold no weights.
BACKBONE_RATES = ("drop_rate", "drop_path_rate")


#: What ``graph.json`` called a shared backbone segment's node before it was ``backbone`` (issue 21: the word
#: was also a task kind's). Model fingerprints keep it, so checkpoints written before the rename still resume.
BACKBONE_NODE_KIND_BEFORE = "segment"


def model_hash(graph: nx.DiGraph) -> str:
    """A fingerprint of the module structure alone: phases, weights' origin, names and dropout rates do not count.

    Rates are set to 0 rather than dropped, so a spec without dropout keeps the fingerprint its
    checkpoints were written with. A head's dropout is kept as whether it has any: a
    ``Dropout`` in its ``Sequential`` renumbers the layers after it
    (:class:`mtdsl.nn.heads.classification.ClassificationHead`).
    """
    structure = copy.deepcopy(graph)
    for _, data in structure.nodes(data=True):
        data.pop("frozen_in", None)
        if data.get("kind") == "backbone":
            data["kind"] = BACKBONE_NODE_KIND_BEFORE  # fingerprints written before the rename still match
        head = data.get("head")
        if isinstance(head, dict) and head.get("dropout"):
            head["dropout"] = "above 0"
    for key in ("phases", "name"):
        structure.graph.pop(key, None)
    for config in structure.graph.get("backbones", {}).values():
        config.pop("pretrained", None)
        config.update({rate: 0.0 for rate in BACKBONE_RATES if rate in config})
    return fingerprint(graph_to_json(structure))
