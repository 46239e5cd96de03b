"""Validated spec + sharing graph → readable ``train.py`` source.

The loop lives in ``templates/train.py.tmpl``; this pass writes the spec's
decisions into it as Python constants (config objects print as the calls that
rebuild them), so the generated file depends only on torch, timm and
mtdsl's runtime modules, and a reader sees every setting next to the loop
that uses it. ``mtdsl train`` runs this same file.

The template's holes say how a value is written, so no spec text can become
code: ``${x!r}`` is a value written by :func:`~mtdsl.codegen.literal.literal`,
``${x!doc}`` is text shown in the docstring, and a bare ``${x}`` takes only
:class:`Code` that this module assembled from such literals.
"""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Iterable
from pathlib import Path

import networkx as nx

from mtdsl import __version__
from mtdsl.codegen.literal import GeneratedCodeError, checked_source, docstring_text, imported_names, literal
from mtdsl.detection.anchors import AnchorConfig, AnchorLabeler
from mtdsl.detection.bench import DetectionSetup
from mtdsl.graph.serialize import graph_to_json
from mtdsl.spec.document import Spec
from mtdsl.spec.streams import Stream, plan_streams
from mtdsl.spec.training import FixedSampling
from mtdsl.train.checkpoint import fingerprint
from mtdsl.train.data import normalization, task_labels
from mtdsl.train.freezing import phases_of

TEMPLATE = Path(__file__).with_name("templates") / "train.py.tmpl"

RUNTIME_IMPORTS = (
    "from rich.console import Console",
    "from mtdsl.errors import DataError, MtdslError, TrainingError",
    "from mtdsl.nn.losses import build_loss",
    "from mtdsl.render.plots import plot_run",
    "from mtdsl.spec.streams import Stream",
    "from mtdsl.train.budget import Budget",
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
    "from mtdsl.train.runtime import (\n    class_names, epoch_line, images_per_task, load_model_class, main_values, num_outputs,"
    " realised_ratios, seed_everything,"
    " stop_on_non_finite,\n    stream_means, to_float,\n)",
    "from mtdsl.train.sampling import TaskSampler",
    "from mtdsl.train.schedule import LearningRate",
    "from mtdsl.train.showcase import write_prediction_images",
    "from mtdsl.train.stop_signals import exit_code, refuse_multi_process_launch, stop_signals, stopped_message",
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


class Code(str):
    """Python source assembled by this module (never raw spec text): the only thing a bare ``${x}`` hole takes."""


def _mapping(items: Iterable[tuple[str, str]]) -> Code:
    lines = [f"    {literal(key)}: {value}," for key, value in items]
    return Code("{\n" + "\n".join(lines) + "\n}" if lines else "{}")


def _listing(values: Iterable[str]) -> Code:
    lines = [f"    {value}," for value in values]
    return Code("[\n" + "\n".join(lines) + "\n]" if lines else "[]")


def _imports_of(classes: set[type]) -> list[str]:
    by_module: dict[str, set[str]] = {}
    for kind in classes:
        by_module.setdefault(kind.__module__, set()).add(kind.__name__)
    return [f"from {module} import {', '.join(sorted(names))}" for module, names in sorted(by_module.items())]


def _stream_source(stream: Stream) -> Code:
    balanced = f", balanced={literal(stream.balanced)}" if stream.balanced else ""
    return Code(f"Stream({literal(stream.datasets)}, tasks={literal(stream.tasks)}, "
                f"batch_size={literal(stream.batch_size)}{balanced})")


def _ratios_by_stream(spec: Spec, streams: list[Stream]) -> list | None:
    sampling = spec.train.sampling
    if not isinstance(sampling, FixedSampling):
        return None
    return [sampling.ratios[stream.tasks[0]] for stream in streams]


def _targets_by_stream(spec: Spec, streams: list[Stream]) -> list[float] | None:
    if spec.train.sampling.kind != "dynamic":
        return None
    return [sum(spec.train.tasks[t].target for t in s.tasks) / len(s.tasks) for s in streams]


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


def _loss_source(spec: Spec, name: str, setups: dict[str, DetectionSetup], classes: set[type]) -> Code:
    loss = literal(spec.train.tasks[name].loss, classes)
    kind = spec.model.tasks[name].kind
    if name in setups:
        return Code(f"build_loss({loss}, task_kind={literal(kind)}, detection=DETECTION[{literal(name)}])")
    if kind == "segment":
        return Code(f"build_loss({loss}, task_kind={literal(kind)})")
    return Code(f"build_loss({loss})")


def generate_train_source(spec: Spec, graph: nx.DiGraph, this_file: str = "train.py") -> str:
    """Python source of the training loop for ``spec``.

    Raises:
        GeneratedCodeError: the source would not compile (mtdsl's bug, never the spec's).
    """
    train = spec.train
    streams = plan_streams(spec)
    labels = task_labels(spec, list(train.tasks))
    first_backbone = next(iter(spec.model.backbones.values()))
    mean, std = normalization(first_backbone.model)
    setups = detection_setups(spec, graph)
    classes: set[type] = set()  # every class a constant below calls, so the file imports exactly those

    def value(obj: object) -> Code:
        return Code(literal(obj, classes))

    out = f"runs/{spec.name}"
    values: dict[str, object] = {
        "name": spec.name,
        "version": __version__,
        "spec_path": spec.source.path,
        "python_command": f"python {shlex.quote(this_file)} --out {shlex.quote(out)}",
        "mtdsl_command": f"mtdsl train {shlex.quote(spec.source.path)} --out {shlex.quote(out)}",
        "spec_hash": spec_hash(spec),
        "model_hash": model_hash(graph),
        "seed": train.seed,
        "input_size": (spec.model.input.height, spec.model.input.width),
        "normalization": (tuple(round(v, 6) for v in mean), tuple(round(v, 6) for v in std)),
        "precision": train.precision,
        "channels_last": train.channels_last,
        "compile": train.compile,
        "workers": train.workers,
        "on_corrupt": train.on_corrupt,
        "datasets": _mapping((name, value(config)) for name, config in spec.datasets.items()),
        "tasks": _mapping((label.task, value(label)) for label in labels),
        "detection": _mapping((name, value(setup)) for name, setup in setups.items()),
        "losses": _mapping((name, _loss_source(spec, name, setups, classes)) for name in train.tasks),
        "weights": _mapping((name, literal(t.weight)) for name, t in train.tasks.items()),
        "streams": _listing(_stream_source(s) for s in streams),
        "sampling": value(train.sampling),
        "sampling_ratios": value(_ratios_by_stream(spec, streams)),
        "sampling_targets": value(_targets_by_stream(spec, streams)),
        "epoch": train.epoch,
        "weighting": value(train.weighting),
        "optimizer": value(train.optimizer),
        "schedule": value(train.schedule),
        "warmup": train.warmup,
        "grad_clip": train.grad_clip,
        "phases": _listing(value(p) for p in phases_of(graph, train)),
    }
    imported = imported_names(list(RUNTIME_IMPORTS))
    values["imports"] = Code("\n".join([*RUNTIME_IMPORTS, *_imports_of({c for c in classes if c.__name__ not in imported})]))
    return checked_source(_fill(TEMPLATE.read_text(encoding="utf-8"), values), "train.py")


def _fill(template: str, values: dict[str, object]) -> str:
    """The template with each hole filled as its form says (see the module docstring)."""

    def replace(match: re.Match) -> str:
        key, form = match.group(1), match.group(2)
        if key not in values:
            raise GeneratedCodeError(f"train.py.tmpl has a hole ${{{key}}} that nothing fills")
        value = values[key]
        if form == "r":
            return literal(value)
        if form == "doc":
            return docstring_text(str(value))
        if not isinstance(value, Code):
            raise GeneratedCodeError(f"hole ${{{key}}} takes Code, got {type(value).__name__}: use ${{{key}!r}}")
        return value

    return re.sub(r"\$\{(\w+)(?:!(r|doc))?\}", replace, template)
