"""Validated spec + sharing graph → readable ``train.py`` source.

The loop lives in ``templates/train.py.tmpl``; this pass writes the spec's
decisions into it as Python constants (config objects print as the calls that
rebuild them), so the generated file depends only on torch, timm and
mtdsl's runtime modules, and a reader sees every setting next to the loop
that uses it. ``mtdsl train`` runs this same file.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from pathlib import Path

import networkx as nx

from mtdsl import __version__
from mtdsl.detection.anchors import AnchorConfig, AnchorLabeler
from mtdsl.detection.bench import DetectionSetup
from mtdsl.graph.serialize import graph_to_json
from mtdsl.spec.document import Spec
from mtdsl.spec.training import FixedSampling, Ramp
from mtdsl.train.checkpoint import fingerprint
from mtdsl.train.data import normalization, task_labels
from mtdsl.train.freezing import phases_of
from mtdsl.train.streams import Stream, plan_streams

TEMPLATE = Path(__file__).with_name("templates") / "train.py.tmpl"

RUNTIME_IMPORTS = (
    "from rich.console import Console",
    "from mtdsl.errors import DataError, MtdslError, TrainingError",
    "from mtdsl.nn.losses import build_loss",
    "from mtdsl.render.plots import plot_run",
    "from mtdsl.train.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint",
    "from mtdsl.train.data import TaskLabels",
    "from mtdsl.train.evaluation import evaluate",
    "from mtdsl.train.freezing import Phase, apply_phase, phase_at",
    "from mtdsl.train.loaders import StreamLoaders",
    "from mtdsl.train.metrics import mean_main",
    "from mtdsl.train.optimizer import build_optimizer, set_learning_rate",
    "from mtdsl.train.precision import pick_device, resolve_precision",
    "from mtdsl.train.progress import EpochProgress",
    "from mtdsl.train.report import MetricsLog, results_table, write_results",
    "from mtdsl.train.run_folder import RunFolder",
    "from mtdsl.train.runtime import (\n    class_names, load_model_class, main_values, num_outputs, realised_ratios, seed_everything,"
    " stop_on_non_finite,\n    stream_means, to_float,\n)",
    "from mtdsl.train.sampling import TaskSampler",
    "from mtdsl.train.schedule import LearningRate",
    "from mtdsl.train.showcase import write_prediction_images",
    "from mtdsl.train.stop_signals import exit_code, refuse_multi_process_launch, stop_signals, stopped_message",
    "from mtdsl.train.streams import Stream",
    "from mtdsl.train.weighting import build_weighting",
)


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


def _mapping(items: Iterable[tuple[str, str]]) -> str:
    lines = [f"    {key!r}: {value}," for key, value in items]
    return "{\n" + "\n".join(lines) + "\n}" if lines else "{}"


def _listing(values: Iterable[str]) -> str:
    lines = [f"    {value}," for value in values]
    return "[\n" + "\n".join(lines) + "\n]" if lines else "[]"


def _config_imports(objects: Iterable[object]) -> list[str]:
    by_module: dict[str, set[str]] = {}
    for obj in objects:
        by_module.setdefault(type(obj).__module__, set()).add(type(obj).__name__)
    return [f"from {module} import {', '.join(sorted(names))}" for module, names in sorted(by_module.items())]


def _stream_source(stream: Stream) -> str:
    balanced = f", balanced={stream.balanced!r}" if stream.balanced else ""
    return f"Stream({stream.datasets!r}, tasks={stream.tasks!r}, batch_size={stream.batch_size}{balanced})"


def _ratios_by_stream(spec: Spec, streams: list[Stream]) -> str:
    sampling = spec.train.sampling
    if not isinstance(sampling, FixedSampling):
        return "None"
    return "[" + ", ".join(repr(sampling.ratios[stream.tasks[0]]) for stream in streams) + "]"


def _targets_by_stream(spec: Spec, streams: list[Stream]) -> str:
    if spec.train.sampling.kind != "dynamic":
        return "None"
    means = [sum(spec.train.tasks[t].target for t in s.tasks) / len(s.tasks) for s in streams]
    return repr(means)


def detection_setups(spec: Spec, graph: nx.DiGraph) -> dict[str, DetectionSetup]:
    """Anchors, matching and NMS of each detect task, from its head's config and its neck's levels."""
    setups = {}
    for name, task in spec.model.tasks.items():
        if task.kind != "detect":
            continue
        head = task.head
        levels = graph.nodes[task.neck]["levels"]
        setups[name] = DetectionSetup(
            anchors=AnchorConfig(
                min_level=levels[0], max_level=levels[-1], num_scales=head.scales,
                aspect_ratios=tuple((round(x, 6), round(y, 6)) for x, y in head.anchor_shapes),
                anchor_scale=head.anchor_scale,
            ),
            labeler=AnchorLabeler(head.match_iou, head.background_iou, num_classes=task.num_outputs),
            image_size=(spec.model.input.height, spec.model.input.width),
            score_threshold=head.score_threshold,
            nms_iou=head.nms_iou,
            max_detections=head.max_detections,
        )
    return setups


def _loss_source(spec: Spec, name: str, setups: dict[str, DetectionSetup]) -> str:
    loss = spec.train.tasks[name].loss
    kind = spec.model.tasks[name].kind
    if name in setups:
        return f"build_loss({loss!r}, task_kind={kind!r}, detection=DETECTION[{name!r}])"
    if kind == "segment":
        return f"build_loss({loss!r}, task_kind={kind!r})"
    return f"build_loss({loss!r})"


def generate_train_source(spec: Spec, graph: nx.DiGraph, this_file: str = "train.py") -> str:
    """Python source of the training loop for ``spec``."""
    train = spec.train
    streams = plan_streams(spec)
    labels = task_labels(spec, list(train.tasks))
    first_backbone = next(iter(spec.model.backbones.values()))
    mean, std = normalization(first_backbone.model)
    configs = [train.sampling, train.weighting, train.optimizer, train.schedule, *spec.datasets.values()]
    configs += [t.loss for t in train.tasks.values()]
    setups = detection_setups(spec, graph)
    configs += [part for setup in setups.values() for part in (setup, setup.anchors, setup.labeler)]
    ramps = [r for r in getattr(train.sampling, "ratios", {}).values() if isinstance(r, Ramp)]
    values = {
        "name": spec.name,
        "version": __version__,
        "spec_path": spec.source.path,
        "this_file": this_file,
        "imports": "\n".join(list(RUNTIME_IMPORTS) + _config_imports(configs + ramps[:1])),
        "spec_hash": spec_hash(spec),
        "model_hash": model_hash(graph),
        "seed": train.seed,
        "input_size": (spec.model.input.height, spec.model.input.width),
        "normalization": f"({tuple(round(v, 6) for v in mean)!r}, {tuple(round(v, 6) for v in std)!r})",
        "precision": train.precision,
        "channels_last": train.channels_last,
        "compile": train.compile,
        "workers": train.workers,
        "on_corrupt": train.on_corrupt,
        "datasets": _mapping((name, repr(config)) for name, config in spec.datasets.items()),
        "tasks": _mapping((label.task, repr(label)) for label in labels),
        "detection": _mapping((name, repr(setup)) for name, setup in setups.items()),
        "losses": _mapping((name, _loss_source(spec, name, setups)) for name in train.tasks),
        "weights": _mapping((name, repr(t.weight)) for name, t in train.tasks.items()),
        "streams": _listing(_stream_source(s) for s in streams),
        "sampling": repr(train.sampling),
        "sampling_ratios": _ratios_by_stream(spec, streams),
        "sampling_targets": _targets_by_stream(spec, streams),
        "weighting": repr(train.weighting),
        "optimizer": repr(train.optimizer),
        "schedule": repr(train.schedule),
        "warmup": train.warmup,
        "grad_clip": train.grad_clip,
        "phases": _listing(repr(p) for p in phases_of(graph, train)),
    }
    return _fill(TEMPLATE.read_text(encoding="utf-8"), values)


def _fill(template: str, values: dict[str, object]) -> str:
    def replace(match: re.Match) -> str:
        value = values[match.group(1)]
        return repr(value) if match.group(2) else str(value)

    return re.sub(r"\$\{(\w+)(!r)?\}", replace, template)

