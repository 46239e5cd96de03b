"""Validated spec + sharing graph → readable ``train.py`` source.

The loop is ``templates/train_loop.py``: plain Python that imports, lints and
type-checks as it stands, because its one generated part, the block between
:data:`BEGIN` and :data:`END`, holds the constants of a real spec
(``specs/quickstart.mtl``; a test keeps it current). This pass writes the
spec's decisions into that block as Python constants (config objects print as
the calls that rebuild them), so the generated file depends only on torch,
timm and mtdsl's runtime modules, and a reader sees every setting above the
loop that uses it. ``mtdsl train`` runs this same file.

No spec text can become code: every value in the block is written by
:func:`~mtdsl.codegen.literal.literal`, and the block is checked to compile.
"""

from __future__ import annotations

import ast
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import networkx as nx

from mtdsl import __version__
from mtdsl.codegen.literal import WIDTH, GeneratedCodeError, checked_source, imported_names, literal, wrapped_literal
from mtdsl.detection.setup import AnchorConfig, AnchorLabeler, DetectionSetup
from mtdsl.graph.facts import NeckFacts, facts
from mtdsl.graph.phases import phases_of
from mtdsl.kinds import TASK_KINDS
from mtdsl.spec.document import Spec
from mtdsl.spec.heads import EfficientDetHeadConfig
from mtdsl.spec.streams import Stream
from mtdsl.spec.training import FixedSampling
from mtdsl.train.data.resize import normalization, pretrained_resize
from mtdsl.train.data.tasks import task_labels
from mtdsl.train.run.fingerprints import model_hash, spec_hash

TEMPLATE = Path(__file__).with_name("templates") / "train_loop.py"
BEGIN = "# >>> spec: written by mtdsl from the spec (change the spec and compile again, not this block)"
END = "# <<< spec"

#: What a reader of the block needs told about a constant (fixed text, never the spec's).
COMMENTS = {
    "RUN_COMMANDS": "Run this file, or the same loop through mtdsl:",
    "DETECTION": "Anchors, box matching and NMS of each detection task.",
    "RESIZE": "Interpolation and evaluation crop: timm's for pretrained weights, else bilinear, the whole side.",
    "TRACK": "Experiment trackers fed from the records of metrics.jsonl (docs/tracking.md); --track replaces them.",
    "EMA": "An average of the weights (none: off); validation, best.pt and the test read it when on.",
    "EARLY_STOP": "Stop after this many epochs without a better mean validation metric (None: never).",
    "EPOCH": 'One epoch: "passes" is a pass over every stream\'s data (Σ|X_i|/B_i steps), '
             '"weighted" the thesis\' Σ|X_i|α_i/B_i.',
}


def _mapping(items: Iterable[tuple[str, str]]) -> str:
    lines = [f"    {literal(key)}: {value}," for key, value in items]
    return "{\n" + "\n".join(lines) + "\n}" if lines else "{}"


def _listing(values: Iterable[str]) -> str:
    lines = [f"    {value}," for value in values]
    return "[\n" + "\n".join(lines) + "\n]" if lines else "[]"


def _imports_of(classes: set[type]) -> list[str]:
    by_module: dict[str, set[str]] = {}
    for kind in classes:
        by_module.setdefault(kind.__module__, set()).add(kind.__name__)
    return [f"from {module} import {', '.join(sorted(names))}" for module, names in sorted(by_module.items())]


def _stream_source(stream: Stream, classes: set[type]) -> str:
    """``Stream(...)`` with its optional fields written only when set, so a spec without them reads as before."""
    balanced = f", balanced={literal(stream.balanced)}" if stream.balanced else ""
    text = (f"Stream({literal(stream.datasets)}, tasks={literal(stream.tasks)}, "
            f"batch_size={literal(stream.batch_size)}{balanced}")
    if stream.augment is not None:
        text += ",\n           augment=" + wrapped_literal(stream.augment, classes, start=19)
    if stream.parts:
        parts = ",\n".join(" " * 11 + _stream_source(part, classes) for part in stream.parts)
        text += ",\n           parts=(\n" + parts + ",\n           )"
    return text + ")"


def _ratios_by_stream(spec: Spec, streams: list[Stream]) -> list | None:
    sampling = spec.train.sampling
    if not isinstance(sampling, FixedSampling):
        return None
    return [sampling.ratios[stream.tasks[0]] for stream in streams]


def _targets_by_stream(spec: Spec, streams: list[Stream]) -> list[float] | None:
    if spec.train.sampling.kind != "dynamic":
        return None
    # Dynamic sampling needs every task's target (spec/checks.py), so none is None here.
    return [sum(cast(float, spec.train.tasks[t].target) for t in s.tasks) / len(s.tasks) for s in streams]


def detection_setups(spec: Spec, graph: nx.DiGraph) -> dict[str, DetectionSetup]:
    """Anchors, matching and NMS of each task with an anchor head (a detect task's EfficientDet head), from the
    head's config and its neck's levels."""
    setups = {}
    for name, task in spec.model.tasks.items():
        head = task.head
        if not isinstance(head, EfficientDetHeadConfig):
            continue
        neck = facts(graph, task.neck or "")
        assert isinstance(neck, NeckFacts)  # a detect head reads a neck (spec/checks.py)
        levels = neck.levels
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


def _loss_source(spec: Spec, name: str, setups: dict[str, DetectionSetup], classes: set[type]) -> str:
    """``build_loss(config, ...)`` for the entry of LOSSES, its arguments filled onto lines as literals are."""
    column = 4 + len(literal(name)) + 2 + len("build_loss(")
    arguments = [wrapped_literal(spec.train.tasks[name].loss, classes, start=column)]
    kind = spec.model.tasks[name].kind
    if name in setups:
        arguments += [f"task_kind={literal(kind)}", f"detection=DETECTION[{literal(name)}]"]
    elif TASK_KINDS[kind].targets == "masks":
        arguments += [f"task_kind={literal(kind)}"]
    text, at = "build_loss(", column
    for index, argument in enumerate(arguments):
        piece = argument + (")" if index == len(arguments) - 1 else ",")
        if index and at + 1 + len(piece) > WIDTH:
            text, at = text + "\n" + " " * column, column
        elif index:
            text, at = text + " ", at + 1
        text += piece
        at = (at if "\n" not in piece else 0) + len(piece.rsplit("\n", 1)[-1])
    return text


def generate_train_source(spec: Spec, graph: nx.DiGraph, this_file: str = "train.py") -> str:
    """Python source of the training loop for ``spec``: the template with its block written for ``spec``.

    Raises:
        GeneratedCodeError: the source would not compile (mtdsl's bug, never the spec's).
    """
    template = TEMPLATE.read_text(encoding="utf-8")
    return checked_source(fill_block(template, spec_block(spec, graph, this_file)), "train.py")


def spec_block(spec: Spec, graph: nx.DiGraph, this_file: str = "train.py") -> str:
    """The constants of ``spec`` as Python, with the imports of the config classes they call."""
    train = spec.train
    streams = spec.streams
    labels = task_labels(spec, list(train.tasks))
    first_backbone = next(iter(spec.model.backbones.values()))
    mean, std = normalization(first_backbone.model)
    resize = pretrained_resize(first_backbone.model, first_backbone.pretrained)
    setups = detection_setups(spec, graph)
    classes: set[type] = set()  # every class a constant below calls, so the file imports exactly those

    def value(obj: object, start: int) -> str:
        return wrapped_literal(obj, classes, start=start)

    def entry(key: str, obj: object) -> tuple[str, str]:
        """An item of a constant dict, written at four spaces in."""
        return key, value(obj, start=4 + len(literal(key)) + 2)

    def constant(name: str, obj: object) -> str:
        return value(obj, start=len(name) + 3)

    out = f"runs/{spec.name}"
    commands = (f"python {shlex.quote(this_file)} --out {shlex.quote(out)}",
                f"mtdsl train {shlex.quote(spec.source.path)} --out {shlex.quote(out)}")
    constants = {
        "SPEC_NAME": literal(spec.name),
        "SPEC_PATH": literal(spec.source.path),
        "MTDSL_VERSION": literal(__version__),
        "RUN_COMMANDS": constant("RUN_COMMANDS", commands),
        "SPEC_HASH": literal(spec_hash(spec)),
        "MODEL_HASH": literal(model_hash(graph)),
        "SEED": literal(train.seed),
        "INPUT_SIZE": literal((spec.model.input.height, spec.model.input.width)),
        "NORMALIZATION": literal((tuple(round(v, 6) for v in mean), tuple(round(v, 6) for v in std))),
        "RESIZE": constant("RESIZE", resize),
        "PRECISION": literal(train.precision),
        "CHANNELS_LAST": literal(train.channels_last),
        "COMPILE": literal(train.compile),
        "WORKERS": literal(train.workers),
        "ON_CORRUPT": literal(train.on_corrupt),
        "TRACK": literal(train.track),
        "DATASETS": _mapping(entry(name, config) for name, config in spec.datasets.items()),
        "TASKS": _mapping(entry(label.task, label) for label in labels),
        "DETECTION": _mapping(entry(name, setup) for name, setup in setups.items()),
        "LOSSES": _mapping((name, _loss_source(spec, name, setups, classes)) for name in train.tasks),
        "LOSS_WEIGHTS": _mapping((name, literal(t.weight)) for name, t in train.tasks.items()),
        "STREAMS": _listing(_stream_source(s, classes) for s in streams),
        "SAMPLING": constant("SAMPLING", train.sampling),
        "SAMPLING_RATIOS": constant("SAMPLING_RATIOS", _ratios_by_stream(spec, streams)),
        "SAMPLING_TARGETS": constant("SAMPLING_TARGETS", _targets_by_stream(spec, streams)),
        "EPOCH": literal(train.epoch),
        "WEIGHTING": constant("WEIGHTING", train.weighting),
        "OPTIMIZER": constant("OPTIMIZER", train.optimizer),
        "SCHEDULE": constant("SCHEDULE", train.schedule),
        "WARMUP_EPOCHS": literal(train.warmup),
        "GRAD_CLIP": literal(train.grad_clip),
        "EMA": constant("EMA", train.ema),
        "EARLY_STOP": literal(train.early_stop),
        "PHASES": _listing(value(p, start=4) for p in phases_of(graph, train, spec.model)),
    }
    template_imports = imported_names(_import_lines(TEMPLATE.read_text(encoding="utf-8")))
    imports = _imports_of({c for c in classes if c.__name__ not in template_imports})
    lines = [*imports, *([""] if imports else [])]
    for name, source in constants.items():
        lines += [f"# {COMMENTS[name]}"] if name in COMMENTS else []
        lines.append(f"{name} = {source}")
    return "\n".join(lines)


def fill_block(template: str, block: str) -> str:
    """``template`` with the lines between its :data:`BEGIN` and :data:`END` markers replaced by ``block``."""
    lines = template.split("\n")
    if lines.count(BEGIN) != 1 or lines.count(END) != 1 or lines.index(BEGIN) > lines.index(END):
        raise GeneratedCodeError(f"the training-loop template needs one '{BEGIN}' line, then one '{END}' line")
    begin, end = lines.index(BEGIN), lines.index(END)
    return "\n".join([*lines[: begin + 1], block, *lines[end:]])


def template_block(template: str) -> str:
    """The block a template holds between its markers (the quickstart's, in the shipped template)."""
    lines = template.split("\n")
    return "\n".join(lines[lines.index(BEGIN) + 1 : lines.index(END)])


def _import_lines(source: str) -> list[str]:
    """The module-level import statements of ``source``, outside the generated block."""
    try:
        tree = ast.parse(fill_block(source, ""))
    except SyntaxError as error:
        raise GeneratedCodeError(f"the training-loop template does not parse: {error}") from error
    return [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
