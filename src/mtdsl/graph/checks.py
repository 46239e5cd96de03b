"""The graph stage's checks: is there a model to build, and does what timm says about its backbones allow it.

:mod:`mtdsl.spec.checks` reads the spec alone; most rules here also need
timm's metadata (:mod:`mtdsl.graph.backbones`): whether timm knows a model
and can cut it, which strides a neck can start at, which segments a
``branch`` or ``tap`` may name, and what a phase may freeze. With them is
the rule that a spec declares a backbone and a task at all (without either
there is no graph); it runs after the model names, as it always has, so an
unknown model is still the first thing a half-written spec is told.

They run in the order of :data:`GRAPH_CHECKS`, each raising a located error
with a fix, on a spec that passed the spec checks, and import timm (and with
it torch) only when a backbone's metadata is not in the cache file yet
(:mod:`mtdsl.graph.backbone_cache`).
"""

from __future__ import annotations

from collections.abc import Callable

from mtdsl.errors import BackboneError, SpecNameError, SpecValueError, close_matches, did_you_mean
from mtdsl.graph.backbones import architecture, backbone_info, is_known_model, known_models, pretrained_tags
from mtdsl.spec.branches import branch_order, root_backbones
from mtdsl.spec.checks import run_checks
from mtdsl.spec.document import Spec
from mtdsl.spec.names import FREEZE_WORDS
from mtdsl.spec.necks import SimplePyramidConfig
from mtdsl.spec.references import SegmentRef
from mtdsl.spec.training import LrScaleConfig


def check_models(spec: Spec) -> None:
    """Each backbone names a model timm can build (by any name timm takes) and mtdsl can cut into segments."""
    for name, backbone in spec.model.backbones.items():
        span = spec.span("backbone", name, "model")
        if not is_known_model(backbone.model):
            raise _unknown_model(backbone.model, name, span)
        try:
            info = backbone_info(backbone.model)
        except BackboneError as error:
            raise BackboneError(error.message, span, expected=error.expected, hint=error.hint) from None
        if info.refusal:
            raise BackboneError(
                f"timm model '{backbone.model}' (family '{info.family}') cannot be cut into segments: {info.refusal}",
                span,
                expected="a model timm builds with features_only=True (cut into segments where its extractor runs "
                "its modules in order, run whole otherwise)",
                hint="`mtdsl backbones PATTERN` lists the models that can, with their segments",
            )


def _unknown_model(model: str, backbone: str, span) -> BackboneError:
    arch = architecture(model)
    if "." in model and is_known_model(arch):
        tags = pretrained_tags(model)
        return BackboneError(
            f"timm has no pretrained tag '{model.partition('.')[2]}' for '{arch}' (backbone '{backbone}')",
            span,
            expected="one of " + ", ".join(tags) if tags else f"'{arch}' alone: timm has no weights for it",
            hint=did_you_mean(model, tags) or f"write timm(\"{arch}\")",
        )
    suggestions = close_matches(model, known_models(), n=5)
    return BackboneError(
        f"unknown timm model '{model}' in backbone '{backbone}'",
        span,
        expected="a name from timm.list_models() or timm.list_pretrained(), e.g. resnet50, resnet18.a1_in1k, "
        "convnext_atto, or a hub name such as hf-hub:timm/resnet18.a1_in1k",
        hint=("did you mean " + ", ".join(f"'{s}'" for s in suggestions) + "?") if suggestions else None,
    )


def check_fixed_input_sizes(spec: Spec) -> None:
    """A model built for one image size (Swin, MaxViT: timm's ``fixed_input_size``) is fed images of that size."""
    for name, backbone in spec.model.backbones.items():
        data = backbone_info(backbone.model).data
        if not data.fixed_input_size:
            continue
        wanted = data.input_size
        inputs = [(spec.model.input.size, spec.span("input") or spec.span("backbone", name, "model"))]
        inputs += [
            (task.input.size, spec.span("task", task_name, "input"))
            for task_name, task in spec.model.tasks.items()
            if task.input is not None and task.backbone == name
        ]
        for size, span in inputs:
            if tuple(size) != tuple(wanted):
                shape = "x".join(str(side) for side in wanted)
                raise BackboneError(
                    f"timm model '{backbone.model}' (backbone '{name}') takes {shape} images only, "
                    f"but is given {'x'.join(str(side) for side in size)}",
                    span,
                    expected=f"input {shape} (timm's fixed_input_size for this model)",
                    hint=f"write input {shape}, or pick a model without a fixed size (e.g. a ConvNeXt or a ResNet)",
                )


def check_neck_strides(spec: Spec) -> None:
    """A neck's backbone has a map at the stride of the neck's finest level (``simple_pyramid``: its last map's
    stride is a power of two, so that each level is a whole number of halvings or doublings away)."""
    for name, neck in spec.model.necks.items():
        info = backbone_info(spec.model.backbones[neck.backbone].model)
        strides = [stage.reduction for stage in info.stages]
        if isinstance(neck, SimplePyramidConfig):
            if strides[-1] & (strides[-1] - 1):
                raise SpecValueError(
                    f"neck '{name}' (simple_pyramid) reads the last map of backbone '{neck.backbone}', at stride "
                    f"{strides[-1]}: no power of two, so no pyramid level is a whole number of halvings from it",
                    spec.span("neck", name),
                    expected="a backbone whose last map has a power-of-two stride (a ViT with 8, 16 or 32 px patches)",
                    hint="pick a patch-16 model (e.g. vit_small_patch16_224 instead of a patch-14 DINOv2)",
                )
            continue
        if 2**neck.min_level not in strides:
            usable = sorted({s.bit_length() - 1 for s in strides if s & (s - 1) == 0 and s > 1})
            hint = f"write min_level = {usable[-1] if usable else 3}"
            if len(set(strides)) == 1:  # a plain vision transformer: one stride, no pyramid to read
                hint += (f", or build the finer levels from its one map: neck {name} = simple_pyramid("
                         f"{neck.backbone}, channels = {neck.channels}, min_level = {neck.min_level}, "
                         f"max_level = {neck.max_level}) (ViTDet's)")
            raise SpecValueError(
                f"neck '{name}' starts at level {neck.min_level} (stride {2**neck.min_level}), "
                f"but backbone '{neck.backbone}' has maps at "
                + (f"strides {strides}" if len(set(strides)) > 1 else f"stride {strides[0]} only"),
                spec.span("neck", name, "min_level") or spec.span("neck", name),
                expected=f"min_level one of {usable}",
                hint=hint,
            )


def check_declarations(spec: Spec) -> None:
    """A spec declares at least one backbone and one task: without either there is no model to build."""
    model_name = spec.span("model")
    if not spec.model.backbones:
        raise SpecNameError(
            "the spec declares no backbone",
            model_name,
            expected="a backbone statement: backbone NAME = timm(\"MODEL\")",
            hint='declare one, e.g. backbone trunk = timm("resnet18")',
        )
    if not spec.model.tasks:
        dataset = next(iter(spec.datasets), "DATASET")
        raise SpecNameError(
            "the spec declares no task",
            model_name,
            expected="a task statement: task NAME: KIND(DATASET) { … }",
            hint=f"add one, e.g. task colour: classify({dataset}) {{ classes = 3 }}",
        )


def check_segments(spec: Spec) -> None:
    """``branch`` and ``tap`` name a segment the backbone has (a ``tap`` may also name a whole backbone or neck)."""
    roots = root_backbones(spec, branch_order(spec))
    for name, task in spec.model.tasks.items():
        for key, reference in (("branch", task.branch), ("tap", task.tap)):
            if reference is None:
                continue
            owner, segment = reference.owner, reference.segment
            if owner in spec.model.backbones:
                model = spec.model.backbones[owner].model
            elif owner in spec.model.tasks:
                model = spec.model.backbones[roots[owner]].model
            else:
                continue  # a neck, read whole
            if key == "tap" and not segment:
                continue
            span = spec.span("task", name, key)
            info = backbone_info(model)
            if not segment:
                raise SpecValueError(
                    f"{key} = {reference} needs a segment",
                    span,
                    expected=f"{owner}.SEGMENT with SEGMENT one of: {', '.join(info.names)}",
                    hint=f"e.g. {key} = {owner}.{info.names[-1]}",
                )
            if segment not in info.names:
                raise BackboneError(
                    f"{key} = {reference}: backbone '{model}' has no segment '{segment}'",
                    span,
                    expected="one of its segments (from timm feature_info): "
                    + ", ".join(f"{s.name} ({s.channels}ch, stride {s.reduction})" for s in info.segments),
                    hint=did_you_mean(segment, info.names),
                )


def check_whole_branches(spec: Spec) -> None:
    """Nothing branches inside a backbone that runs whole: its first segment holds all its weights (timm's
    ``features_only`` extractor), the later ones none, so a task's copy of a later segment would own no weights
    (:func:`mtdsl.graph.backbones.whole_info`)."""
    roots = root_backbones(spec, branch_order(spec))
    for name, task in spec.model.tasks.items():
        if task.branch is None or task.branch.is_whole or task.neck is not None:
            continue
        owner = task.branch.owner
        backbone = owner if owner in spec.model.backbones else roots.get(owner, "")
        if backbone not in spec.model.backbones:
            continue
        info = backbone_info(spec.model.backbones[backbone].model)
        if not info.whole or task.branch.segment not in info.names:
            continue
        reads = task.tap.segment if task.tap is not None and task.tap.segment in info.names else info.names[-1]
        if info.index(task.branch.segment) < info.index(reads):
            raise SpecValueError(
                f"task '{name}' branches inside backbone '{backbone}' (branch = {task.branch}), but timm model "
                f"'{info.model}' runs whole: its first segment holds all its weights, so a copy of "
                f"{', '.join(info.names[info.index(task.branch.segment) + 1:info.index(reads) + 1])} would own none",
                spec.span("task", name, "branch"),
                expected=f"no branch, or branch = {owner}.{reads} (the segment the task reads: nothing is copied)",
                hint=f"give the task a backbone of its own (a second backbone statement with timm(\"{info.model}\")), "
                "or pick a model that `mtdsl backbones PATTERN` lists as cut (not \"runs whole\")",
            )


def check_whole_targets(spec: Spec) -> None:
    """No phase freezes, and no ``lr_scale`` scales, one segment of a backbone that runs whole: its first segment
    holds all its weights and the others none, so a segment named alone names all of it or nothing."""
    targets: list[tuple[SegmentRef, tuple[str, ...], str]] = [
        (target, ("phase", phase.name, "freeze", str(index)), f"phase '{phase.name}' freezes")
        for phase in spec.train.phases for index, target in enumerate(phase.freeze)
    ]
    written = spec.train.lr_scale if spec.train.lr_scale != "auto" else None
    scales: list[tuple[tuple[str, ...], LrScaleConfig | None]] = [(("train", "lr_scale"), written)]
    scales += [(("phase", phase.name, "lr_scale"), phase.lr_scale) for phase in spec.train.phases]
    targets += [(target, (*where, str(target)), "lr_scale scales")
                for where, scale in scales for target, _ in (scale.targets if scale is not None else ())]
    for target, where, verb in targets:
        backbone = spec.model.backbones.get(target.owner)
        if target.is_whole or backbone is None or not is_known_model(backbone.model):
            continue
        if backbone_info(backbone.model).whole:
            raise SpecValueError(
                f"{verb} '{target}', one segment of backbone '{target.owner}', but timm model '{backbone.model}' "
                "runs whole: its first segment holds all its weights and the others none",
                spec.span(*where),
                expected=f"the whole backbone: {target.owner}",
                hint=f"write {target.owner} instead of {target}, or pick a model that `mtdsl backbones PATTERN` "
                "lists as cut (not \"runs whole\")",
            )


def check_map_heads(spec: Spec) -> None:
    """A head that reads one feature map taps a segment, not a whole pyramid (the fix names the last segment)."""
    for name, task in spec.model.tasks.items():
        head = task.head
        if task.tap is None or not task.tap.is_whole or head.reads != "map":
            continue
        tapped = task.tap.owner
        owner = spec.model.necks[tapped].backbone if tapped in spec.model.necks else tapped
        last = _last_segment(spec, owner)
        raise SpecValueError(
            f"head '{head.kind}' of task '{name}' reads one feature map, but tap = {task.tap} is a whole pyramid",
            spec.span("task", name, "tap"),
            expected=f"a single segment such as {owner}.{last}",
            hint=f"write tap = {owner}.{last}",
        )


def _last_segment(spec: Spec, owner: str) -> str:
    if owner in spec.model.backbones:
        return backbone_info(spec.model.backbones[owner].model).names[-1]
    return "stage4"


def check_freeze_targets(spec: Spec) -> None:
    """Each phase freezes parts of the model by name (see :mod:`mtdsl.graph.freeze`)."""
    vocabulary = freeze_vocabulary(spec)
    for phase in spec.train.phases:
        for index, target in enumerate(phase.freeze):
            if str(target) not in vocabulary:
                raise SpecNameError(
                    f"phase '{phase.name}' freezes '{target}', which names nothing in the model",
                    spec.span("phase", phase.name, "freeze", str(index)),
                    expected="shared, heads, branches, backbones, necks, a backbone, BACKBONE.SEGMENT, a neck, "
                    "a task or TASK.head",
                    hint=did_you_mean(str(target), vocabulary),
                )


def check_lr_scale_targets(spec: Spec) -> None:
    """``lr_scale`` names parts of the model as freeze targets do (see :mod:`mtdsl.graph.parts`)."""
    vocabulary = freeze_vocabulary(spec)
    written = spec.train.lr_scale if spec.train.lr_scale != "auto" else None  # auto names only backbones
    scales: list[tuple[tuple[str, ...], LrScaleConfig | None]] = [(("train", "lr_scale"), written)]
    scales += [(("phase", phase.name, "lr_scale"), phase.lr_scale) for phase in spec.train.phases]
    for where, scale in scales:
        for target, _ in scale.targets if scale is not None else ():
            if str(target) not in vocabulary:
                raise SpecNameError(
                    f"lr_scale names '{target}', which names nothing in the model",
                    spec.span(*where, str(target)),
                    expected="shared, heads, branches, backbones, necks, a backbone, BACKBONE.SEGMENT, a neck, "
                    "a task or TASK.head",
                    hint=did_you_mean(str(target), vocabulary),
                )


def freeze_vocabulary(spec: Spec) -> list[str]:
    """Every freeze target that names something in ``spec``'s model."""
    words = [*FREEZE_WORDS, *spec.model.necks]
    for name, backbone in spec.model.backbones.items():
        words.append(name)
        if is_known_model(backbone.model):
            words += [str(SegmentRef(name, segment)) for segment in backbone_info(backbone.model).names]
    for task in spec.model.tasks:
        words += [task, str(SegmentRef(task, "head"))]
    return words


GRAPH_CHECKS: tuple[Callable[[Spec], None], ...] = (
    check_models,
    check_fixed_input_sizes,
    check_neck_strides,
    check_declarations,
    check_segments,
    check_whole_branches,
    check_map_heads,
    check_freeze_targets,
    check_lr_scale_targets,
    check_whole_targets,
)


def run_graph_checks(spec: Spec) -> Spec:
    """Run :data:`GRAPH_CHECKS` on a spec that passed :func:`mtdsl.spec.checks.run_checks`."""
    return run_checks(spec, GRAPH_CHECKS)
