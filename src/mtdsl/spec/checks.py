"""Rules that span several fields, each a small ``check_*`` function.

They run after lowering, in the order of :data:`CHECKS`, and each raises an
error that points at the offending text with a concrete fix. They read the
spec alone: rules that need what timm says about a backbone (a model's
family, its segments and strides) run in the graph stage, in one pass
(:mod:`mtdsl.graph.checks`) before the graph is built, as does the rule that
a spec declares a backbone and a task at all.
"""

from __future__ import annotations

from collections.abc import Callable

from mtdsl.errors import GraphError, SpecNameError, SpecValueError, did_you_mean, listing
from mtdsl.kinds import TASK_KINDS
from mtdsl.spec.branches import branch_order
from mtdsl.spec.data import unserved
from mtdsl.spec.document import Spec
from mtdsl.spec.heads import heads_for
from mtdsl.spec.losses import losses_for
from mtdsl.spec.model import TaskSpec
from mtdsl.spec.streams import is_balanced
from mtdsl.spec.training import DynamicSampling, FixedSampling

PRETRAINED_SOURCES = ("none", "imagenet")


def check_pretrained(spec: Spec) -> None:
    """``pretrained`` is ``none``, ``imagenet`` or a path (whether timm knows the model is the graph stage's check)."""
    for name, backbone in spec.model.backbones.items():
        pretrained = backbone.pretrained
        if pretrained not in PRETRAINED_SOURCES and not _looks_like_path(pretrained):
            raise SpecValueError(
                f"pretrained = {pretrained} in backbone '{name}' is neither a known source nor a file path",
                spec.span("backbone", name, "pretrained"),
                expected='none, imagenet, or a quoted path to a state dict, e.g. "weights/resnet50.pth"',
                hint=did_you_mean(pretrained, PRETRAINED_SOURCES),
            )


def _looks_like_path(value: str) -> bool:
    return "/" in value or value.endswith((".pth", ".pt", ".bin", ".safetensors"))


def check_necks(spec: Spec) -> None:
    """A neck reads a declared backbone (the graph stage checks the backbone has a map at the neck's finest stride)."""
    for name, neck in spec.model.necks.items():
        if neck.backbone not in spec.model.backbones:
            raise SpecNameError(
                f"neck '{name}' reads backbone '{neck.backbone}', which is not declared",
                spec.span("neck", name, "backbone") or spec.span("neck", name),
                expected=f"a declared backbone: {listing(spec.model.backbones) or 'none declared'}",
                hint=did_you_mean(neck.backbone, spec.model.backbones)
                or f"write {neck.kind}({next(iter(spec.model.backbones), 'trunk')}, …)",
            )


def check_square_input(spec: Spec) -> None:
    """Dense tasks (detect, segment) letterbox images to a square, so the model's input must be one."""
    size = spec.model.input
    dense = [name for name, task in spec.model.tasks.items() if TASK_KINDS[task.kind].dense]
    if dense and size.height != size.width:
        side = max(size.height, size.width)
        raise SpecValueError(
            f"{spec.model.tasks[dense[0]].kind} task '{dense[0]}' letterboxes images to a square, "
            f"but the input is {size.height}x{size.width} (height x width)",
            spec.span("input") or spec.span("task", dense[0]),
            hint=f"make the input square, e.g. input {size.channels}x{side}x{side}",
        )


def check_datasets(spec: Spec) -> None:
    for name, training in spec.train.tasks.items():
        for dataset in training.datasets:
            if dataset not in spec.datasets:
                raise SpecNameError(
                    f"task '{name}' uses dataset '{dataset}', which is not declared",
                    spec.span("task", name, "dataset", dataset),
                    expected=f"a declared dataset: {listing(spec.datasets) or 'none declared'}",
                    hint=did_you_mean(dataset, spec.datasets)
                    or f"declare it, e.g. dataset {dataset} = folder(\"path/to/images\")",
                )


def check_formats_serve(spec: Spec) -> None:
    """Every dataset a task reads is of a format that has targets for the task's kind (no boxes from a folder)."""
    for name, training in spec.train.tasks.items():
        kind = spec.model.tasks[name].kind
        for dataset in training.datasets:
            problem = unserved(spec.datasets[dataset], dataset, name, kind)
            if problem is not None:
                raise SpecValueError(
                    problem.message,
                    spec.span("task", name, "dataset", dataset),
                    expected=problem.expected,
                    hint=problem.hint,
                )


def check_joined_datasets(spec: Spec) -> None:
    """A task may learn from several datasets when each one's labels can be matched to its classes by name.

    Every task kind joins: each dataset labels the task classes it has, and the
    others are unknown on its images (masked out of the loss), not "no".
    """
    for name, training in spec.train.tasks.items():
        if len(training.datasets) == 1:
            continue
        task = spec.model.tasks[name]
        joined = " + ".join(training.datasets)
        counted = task.classes is None or task.classes == [str(i) for i in range(len(task.classes))]
        if TASK_KINDS[task.kind].joins_by_class_name and counted:
            raise SpecValueError(
                f"task '{name}' learns from {joined} but does not name its classes",
                spec.span("task", name, "classes"),
                expected="the class names, so each dataset's labels can be matched to them",
                hint='list them, e.g. classes = ["cat", "dog", "person"]; each dataset labels those it has',
            )
        synthetic = [dataset for dataset in training.datasets if spec.datasets[dataset].kind == "synthetic"]
        if len(synthetic) > 1:
            raise SpecValueError(
                f"task '{name}' joins the synthetic datasets '{synthetic[0]}' and '{synthetic[1]}'",
                spec.span("task", name, "dataset", synthetic[1]),
                hint="use one synthetic dataset with a larger count",
            )


def check_joined_augment(spec: Spec) -> None:
    """Datasets joined in one stream share its batches, so they must declare the same ``augment``.

    A task's own ``augment`` replaces theirs on its samples, so then they may differ.
    """
    for name, training in spec.train.tasks.items():
        if training.augment is not None:
            continue
        first, *others = training.datasets
        for other in others:
            mine, theirs = spec.datasets[first].augment, spec.datasets[other].augment  # check_datasets ran first
            if mine != theirs:
                written = other if theirs is not None else first
                raise SpecValueError(
                    f"task '{name}' joins datasets '{first}' and '{other}', which augment differently; "
                    "their images are augmented together in one stream",
                    spec.span("dataset", written, "augment"),
                    hint=f"give '{first}' and '{other}' the same augment = [...] (or leave it out of both), "
                    f"or give task '{name}' its own augment = [...]",
                )


def check_dense_augment(spec: Spec) -> None:
    """A dense task (detect, segment) takes only ops that move boxes and masks with the pixels: its own
    ``augment``'s, or else those of the datasets it reads."""
    for name, training in spec.train.tasks.items():
        kind = spec.model.tasks[name].kind
        if not TASK_KINDS[kind].dense:
            continue
        if training.augment is not None:
            lists = [(training.augment, ("task", name, "augment"), f"{kind} task '{name}'", "")]
        else:
            lists = [(spec.datasets[dataset].augment or (), ("dataset", dataset, "augment"), f"dataset '{dataset}'",
                      f", and {kind} task '{name}' learns from that dataset") for dataset in training.datasets]
        for ops, where, owner, reader in lists:
            for index, op in enumerate(ops):
                if op.image_only:
                    own = f", or give task '{name}' its own augment = [...] without it (the dataset's other tasks " \
                        "keep this one)"
                    raise SpecValueError(
                        f"{op.kind} in the augment of {owner} moves pixels without the boxes and masks on them{reader}",
                        spec.span(*where, str(index)),
                        expected="ops that move boxes and masks too: crop, flip, vflip, scale_jitter, colour_jitter",
                        hint=f"remove {op.kind} here" + (own if reader else ""),
                    )


def check_resize(spec: Spec) -> None:
    """A dataset's ``resize`` fits every task that reads it, and datasets joined in one stream agree on it.

    ``crop`` cuts each picture's centre out at evaluation, so boxes and masks outside it would be lost:
    a detect or segment task takes ``letterbox`` or ``squash``. Both of those make a square.
    """
    size = spec.model.input
    for name, training in spec.train.tasks.items():
        kind = spec.model.tasks[name].kind
        first, *others = training.datasets
        for other in others:
            mine, theirs = spec.datasets[first].resize, spec.datasets[other].resize
            if mine != theirs:
                written = other if theirs is not None else first
                raise SpecValueError(
                    f"task '{name}' joins datasets '{first}' and '{other}', which resize differently; "
                    "their images are resized together in one stream",
                    spec.span("dataset", written, "resize"),
                    hint=f"give '{first}' and '{other}' the same resize = … (or leave it out of both)",
                )
        for dataset in training.datasets:
            policy = spec.datasets[dataset].resize
            if policy == "crop" and TASK_KINDS[kind].dense:
                raise SpecValueError(
                    f"resize = crop in dataset '{dataset}' cuts the centre out of each picture, and {kind} task "
                    f"'{name}' learns from that dataset: {TASK_KINDS[kind].targets} outside the centre would be lost",
                    spec.span("dataset", dataset, "resize"),
                    expected="letterbox (keep the aspect, pad the rest) or squash (stretch to the input)",
                    hint="write resize = letterbox (the default for it), or resize = squash",
                )
            if policy in ("letterbox", "squash") and size.height != size.width:
                raise SpecValueError(
                    f"resize = {policy} in dataset '{dataset}' makes a square picture, but the input is "
                    f"{size.height}x{size.width} (height x width)",
                    spec.span("dataset", dataset, "resize"),
                    hint=f"make the input square, e.g. input {size.channels}x{max(size.height, size.width)}x"
                    f"{max(size.height, size.width)}, or write resize = crop",
                )


def check_dataset_classes(spec: Spec) -> None:
    """A manifest's ``classes`` (the labels it labels) are classes of the tasks that read its label column.

    A name no such task has is a typo more often than not: the task would then
    learn nothing about it from this dataset, with no word said.
    """
    for name, training in spec.train.tasks.items():
        task = spec.model.tasks[name]
        if not TASK_KINDS[task.kind].image_labels:
            continue
        counted = task.classes is None or task.classes == [str(i) for i in range(len(task.classes))]
        for dataset_name in training.datasets:
            dataset = spec.datasets.get(dataset_name)
            listed = getattr(dataset, "classes", None)
            if dataset is None or dataset.kind not in ("csv", "json") or listed is None:
                continue
            if training.label not in (None, getattr(dataset, "label_column", None)):
                continue  # the list describes the label column; this task reads another one
            if TASK_KINDS[task.kind].yes_no:
                positive = training.positive
                if positive is not None and positive not in listed:
                    raise SpecValueError(
                        f"{task.kind} task '{name}' counts '{positive}' as yes, but dataset '{dataset_name}' "
                        f"labels only {', '.join(listed)}",
                        spec.span("dataset", dataset_name, "classes"),
                        expected=f"'{positive}' among the dataset's classes",
                        hint=did_you_mean(positive, listed)
                        or f"add '{positive}' to the dataset's classes, or take the dataset out of the task",
                    )
                continue
            if counted or task.classes is None:
                continue
            for index, label in enumerate(listed):
                if label not in task.classes:
                    raise SpecNameError(
                        f"dataset '{dataset_name}' labels class '{label}', which {task.kind} task '{name}' "
                        "does not have",
                        spec.span("dataset", dataset_name, "classes", str(index)),
                        expected=f"one of the task's classes: {listing(task.classes)}",
                        hint=did_you_mean(label, task.classes)
                        or f"add '{label}' to the task's classes, or remove it from the dataset's",
                    )


def check_task_backbones(spec: Spec) -> None:
    backbones = spec.model.backbones
    for name, task in spec.model.tasks.items():
        if task.backbone == "":
            reference = task.branch or task.tap
            if reference is not None and reference.owner in spec.model.tasks:
                continue
            raise SpecNameError(
                f"task '{name}' does not say which backbone it uses, and there are {len(backbones)}",
                spec.span("task", name),
                expected=f"one of: {listing(backbones)}",
                hint=f"add 'backbone = {next(iter(backbones))}' or 'branch = {next(iter(backbones))}.stage4'",
            )
        if task.backbone not in backbones:
            raise SpecNameError(
                f"task '{name}' uses backbone '{task.backbone}', which is not declared",
                spec.span("task", name, "backbone"),
                expected=f"a declared backbone: {listing(backbones) or 'none declared'}",
                hint=did_you_mean(task.backbone, backbones),
            )


def check_references(spec: Spec) -> None:
    """``branch`` and ``tap`` name a backbone, a neck or another task (the graph stage checks which segments exist)."""
    branch_order(spec)  # tasks that branch off each other in a cycle are an error here
    for name, task in spec.model.tasks.items():
        for key, reference in (("branch", task.branch), ("tap", task.tap)):
            if reference is None:
                continue
            span = spec.span("task", name, key)
            owner, segment = reference.owner, reference.segment
            if owner in spec.model.backbones:
                if task.backbone and owner != task.backbone:
                    uses = task.backbone
                    raise SpecValueError(
                        f"{key} = {reference} is on backbone '{owner}', but task '{name}' uses backbone '{uses}'",
                        span,
                        hint=f"write {key} = {uses}.{segment or 'SEGMENT'}, or remove 'backbone = {uses}'",
                    )
            elif owner == name:
                example = f"{next(iter(spec.model.backbones), 'trunk')}.stage3"
                raise GraphError(
                    f"{key} = {reference}: task '{name}' cannot {'branch off' if key == 'branch' else 'tap'} itself",
                    span,
                    expected=f"BACKBONE.SEGMENT or another task's TASK.SEGMENT, e.g. {example}",
                )
            elif owner not in spec.model.tasks and not (owner in spec.model.necks and key == "tap"):
                options = list(spec.model.backbones) + [t for t in spec.model.tasks if t != name]
                if key == "tap":
                    options += list(spec.model.necks)
                raise SpecNameError(
                    f"{key} = {reference}: '{owner}' is neither a backbone{', a neck' if key == 'tap' else ''} "
                    "nor another task",
                    span,
                    expected=f"BACKBONE.SEGMENT or TASK.SEGMENT with one of: {listing(options)}",
                    hint=did_you_mean(owner, options),
                )
            if key == "tap" and owner in spec.model.necks:
                neck_backbone = spec.model.necks[owner].backbone
                if task.backbone and neck_backbone != task.backbone:
                    on_its_backbone = [n for n, config in spec.model.necks.items() if config.backbone == task.backbone]
                    raise GraphError(
                        f"task '{name}' uses backbone '{task.backbone}', but tap = {owner} reads neck '{owner}', "
                        f"which is built on backbone '{neck_backbone}'",
                        span,
                        expected=f"a neck built on '{task.backbone}': {listing(on_its_backbone) or 'none declared'}",
                        hint=f"remove 'backbone = {task.backbone}' (the neck decides it), or declare "
                        f"neck {task.backbone}_pyramid = {spec.model.necks[owner].kind}({task.backbone}) and tap it",
                    )
                if segment:
                    raise SpecValueError(
                        f"tap = {reference}: a neck is read whole, as a pyramid",
                        span,
                        hint=f"write tap = {owner}",
                    )
                if task.branch:
                    raise GraphError(
                        f"task '{name}' taps neck '{owner}' and also branches at {task.branch}",
                        spec.span("task", name, "branch"),
                        hint="a neck reads the shared backbone: remove 'branch', or give the task its own neck "
                        f"(neck {name}_pyramid = {spec.model.necks[owner].kind}({spec.model.necks[owner].backbone}))",
                    )


def check_classes(spec: Spec) -> None:
    for name, task in spec.model.tasks.items():
        span = spec.span("task", name, "classes") or spec.span("task", name)
        kind = TASK_KINDS[task.kind]
        if kind.takes_classes and not task.classes:
            raise SpecValueError(
                f"{task.kind} task '{name}' needs its classes",
                span,
                expected="classes = N or classes = [name, name, …]",
                hint="e.g. classes = 3 or classes = [healthy, angular_leaf_spot, bean_rust]",
            )
        if kind.no_classes is not None and task.classes is not None:
            why, fix = kind.no_classes
            raise SpecValueError(f"{task.kind} task '{name}' {why}", span, hint=fix)
        if kind.one_class is not None and task.classes and len(task.classes) < 2:
            why, fix = kind.one_class
            raise SpecValueError(f"{task.kind} task '{name}' has one class; {why}", span, hint=fix)
        if task.classes and len(set(task.classes)) != len(task.classes):
            duplicates = sorted({c for c in task.classes if task.classes.count(c) > 1})
            raise SpecValueError(
                f"task '{name}' lists class {duplicates[0]!r} more than once", span, hint="remove the duplicate"
            )


def check_heads_fit(spec: Spec) -> None:
    for name, task in spec.model.tasks.items():
        head = task.head
        span = spec.span("task", name, "head") or spec.span("task", name)
        if head.kind not in TASK_KINDS[task.kind].heads:
            raise SpecValueError(
                f"head '{head.kind}' does not fit {task.kind} task '{name}'",
                span,
                expected=f"a head for {task.kind} tasks: {listing(heads_for(task.kind)) or 'none registered yet'}",
                hint=f"'{head.kind}' serves {', '.join(sorted(head.task_kinds))} tasks",
            )
        if head.reads == "pyramid" and not _taps_a_neck(task, spec):
            necks = list(spec.model.necks)
            hint: str | None
            if not necks:
                backbone = task.backbone or next(iter(spec.model.backbones), "trunk")
                hint = f"declare one, e.g. neck pyramid = bifpn({backbone}), and write tap = pyramid"
            else:
                hint = f"write tap = {necks[0]}" if task.tap is None else did_you_mean(str(task.tap), necks)
            raise SpecValueError(
                f"head '{head.kind}' of task '{name}' reads a feature pyramid, so it must tap a neck"
                + (f", and {task.tap} is not one" if task.tap else ""),
                spec.span("task", name, "tap") or span,
                expected=f"tap = a declared neck: {listing(necks)}" if necks else "a neck: neck NAME = bifpn(BACKBONE)",
                hint=hint,
            )


def _taps_a_neck(task: TaskSpec, spec: Spec) -> bool:
    return task.tap is not None and task.tap.is_whole and task.tap.owner in spec.model.necks


def check_crops(spec: Spec) -> None:
    """``crops = [breed]`` on a detect task names classification tasks that label each detected box."""
    for name, task in spec.model.tasks.items():
        if task.crops and not TASK_KINDS[task.kind].crops:
            raise SpecValueError(
                f"'crops' only applies to {TASK_KINDS.spelled(lambda kind: kind.crops)} tasks; '{name}' is {task.kind}",
                spec.span("task", name, "crops"),
                hint="move it to the detect task whose boxes the tasks should classify",
            )
        for crop_task in task.crops:
            kind = spec.model.tasks[crop_task].kind if crop_task in spec.model.tasks else None
            if kind is None or not TASK_KINDS[kind].image_labels:
                options = [t for t, s in spec.model.tasks.items() if TASK_KINDS[s.kind].image_labels]
                raise SpecValueError(
                    f"crops = {crop_task}: " + (f"'{crop_task}' is a {kind} task" if kind else "no such task"),
                    spec.span("task", name, "crops"),
                    expected="classification tasks that label each detected box: "
                    f"{listing(options) or 'none declared'}",
                    hint=did_you_mean(crop_task, options),
                )


def check_losses_fit(spec: Spec) -> None:
    for name, training in spec.train.tasks.items():
        kind = spec.model.tasks[name].kind
        if getattr(training.loss, "dice", 0) and not TASK_KINDS[kind].dice:
            dense = TASK_KINDS.spelled(lambda task_kind: task_kind.dice)
            raise SpecValueError(
                f"cross_entropy(dice = …) applies to {dense} tasks; '{name}' is {kind}",
                spec.span("task", name, "loss"),
                hint=f"remove dice, or use it on a {dense} task",
            )
        if training.loss.kind not in TASK_KINDS[kind].losses:
            raise SpecValueError(
                f"loss '{training.loss.kind}' does not fit {kind} task '{name}'",
                spec.span("task", name, "loss"),
                expected=f"a loss for {kind} tasks: {listing(losses_for(kind)) or 'none registered yet'}",
                hint=f"use loss = {losses_for(kind)[0]}()" if losses_for(kind) else None,
            )


def check_sampling(spec: Spec) -> None:
    sampling = spec.train.sampling
    tasks = spec.model.tasks
    if isinstance(sampling, FixedSampling):
        for task in sampling.ratios:
            if task not in tasks:
                raise SpecNameError(
                    f"sampling ratio for '{task}', which is not a task",
                    spec.span("train", "sampling", task),
                    expected=f"a task: {listing(tasks)}",
                    hint=did_you_mean(task, tasks),
                )
        missing = [t for t in tasks if t not in sampling.ratios]
        if missing:
            raise SpecValueError(
                f"fixed sampling gives no ratio to task{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
                spec.span("train", "sampling"),
                hint=f"add {missing[0]} = … (0 never samples it)",
            )
    if isinstance(sampling, DynamicSampling):
        for name, training in spec.train.tasks.items():
            if training.target is None:
                raise SpecValueError(
                    f"dynamic sampling needs a target metric for task '{name}'",
                    spec.span("task", name),
                    hint="add e.g. target = 0.9 (its single-task validation accuracy) to the task",
                )


def check_binary_positive(spec: Spec) -> None:
    for name, training in spec.train.tasks.items():
        task = spec.model.tasks[name]
        if training.positive is not None and not TASK_KINDS[task.kind].yes_no:
            yes_no = TASK_KINDS.spelled(lambda kind: kind.yes_no)
            raise SpecValueError(
                f"'positive' only applies to {yes_no} tasks; '{name}' is {task.kind}",
                spec.span("task", name, "positive"),
                hint=f"remove it, or make the task {TASK_KINDS.where(lambda kind: kind.yes_no)[0]}(…)",
            )


def check_phases(spec: Spec) -> None:
    """The phases add up to ``epochs`` (what each phase may freeze is the graph stage's check)."""
    train = spec.train
    if train.phases and spec.span("train", "epochs") is not None and train.epochs != train.total_epochs:
        raise SpecValueError(
            f"epochs = {train.epochs} but the phases add up to {train.total_epochs}",
            spec.span("train", "epochs"),
            hint="remove 'epochs' (the phases decide it) or make them agree",
        )


def check_cyclic_bounds(spec: Spec) -> None:
    """A ``cyclic`` schedule whose ``max_lr`` is the optimizer's ``lr`` starts no higher than that ``lr``."""
    schedule, rate = spec.train.schedule, spec.train.optimizer.lr  # type: ignore[attr-defined]
    if schedule.kind == "cyclic" and schedule.max_lr is None and (schedule.base_lr or 0.0) > rate:  # type: ignore[attr-defined]
        raise SpecValueError(
            f"cyclic base_lr = {schedule.base_lr:g} is above the optimizer's lr = {rate:g}, "  # type: ignore[attr-defined]
            f"which is the cycle's max_lr when none is written",
            spec.span("train", "schedule"),
            hint=f"write max_lr (cyclic(base_lr = {schedule.base_lr:g}, max_lr = ...)), "  # type: ignore[attr-defined]
                 f"or a base_lr below {rate:g}",
        )


def check_balanced(spec: Spec) -> None:
    for name, training in spec.train.tasks.items():
        kind = spec.model.tasks[name].kind
        if training.balanced is not None and not TASK_KINDS[kind].yes_no:
            yes_no = TASK_KINDS.spelled(lambda task_kind: task_kind.yes_no)
            raise SpecValueError(
                f"'balanced' only applies to {yes_no} tasks; '{name}' is {kind}",
                spec.span("task", name, "balanced"),
                hint=f"remove it, or make the task {TASK_KINDS.where(lambda task_kind: task_kind.yes_no)[0]}",
            )


def check_joint_sampling(spec: Spec) -> None:
    """``sampling = joint`` draws one batch of photos for every task, so nothing may ask for batches of its own.

    A balanced binary task draws half positive, half negative batches for itself; a task's own ``augment`` or
    batch size, or datasets that augment or resize differently, would each need batches apart from the
    others'; and one batch holds synthetic images of one generator only.
    """
    if spec.train.sampling.kind != "joint":
        return
    change = "or choose another sampling (proportional keeps a stream per dataset)"
    for name, training in spec.train.tasks.items():
        if is_balanced(spec, name):
            raise SpecValueError(
                f"binary task '{name}' draws balanced batches of its own, but sampling = joint trains every task "
                "on one stream of photos",
                spec.span("task", name, "balanced"),
                hint=f"write balanced = false on task '{name}', {change}",
            )
        for field, what in (("augment", "augment = [...]"), ("batch_size", "batch_size")):
            if getattr(training, field) is not None:
                raise SpecValueError(
                    f"task '{name}' sets its own {field}, but sampling = joint trains every task on the same "
                    "batches of photos",
                    spec.span("task", name, field),
                    hint=f"remove {what} from task '{name}' and write it once "
                    + ("on its datasets" if field == "augment" else "in train { }") + f", {change}",
                )
    datasets = list(dict.fromkeys(name for training in spec.train.tasks.values() for name in training.datasets))
    first, *others = datasets
    for field in ("augment", "resize"):
        for other in others:
            mine, theirs = getattr(spec.datasets[first], field), getattr(spec.datasets[other], field)
            if mine != theirs:
                written = other if theirs is not None else first
                raise SpecValueError(
                    f"datasets '{first}' and '{other}' {field} differently, but sampling = joint puts their "
                    f"photos in the same batches, which are {'augmented' if field == 'augment' else 'resized'} "
                    "alike",
                    spec.span("dataset", written, field),
                    hint=f"give '{first}' and '{other}' the same {field} = … (or leave it out of both), {change}",
                )
    synthetic = [name for name in datasets if spec.datasets[name].kind == "synthetic"]
    settings = [spec.datasets[name].model_dump(exclude={"name"}) for name in synthetic]
    for other, its_settings in zip(synthetic[1:], settings[1:]):
        if its_settings != settings[0]:
            raise SpecValueError(
                f"synthetic datasets '{synthetic[0]}' and '{other}' differ, but sampling = joint puts their "
                "images in the same batches, which draw from one generator",
                spec.span("dataset", other),
                hint=f"read both tasks from '{synthetic[0]}', {change}",
            )


def check_shared_batches(spec: Spec) -> None:
    """Tasks that share a stream share its batches, so they must agree on batch size and sampling ratio."""
    sampling = spec.train.sampling
    for stream in spec.streams:
        first, *others = stream.tasks
        for other in others:
            sizes = [spec.train.tasks[t].batch_size for t in (first, other)]
            if None not in sizes and sizes[0] != sizes[1]:
                raise SpecValueError(
                    f"tasks '{first}' and '{other}' both learn from dataset '{stream.dataset}' in the same batches, "
                    f"but ask for batch sizes {sizes[0]} and {sizes[1]}",
                    spec.span("task", other, "batch_size"),
                    hint="give them the same batch_size, or set it once in train { }",
                )
            if isinstance(sampling, FixedSampling) and sampling.ratios[first] != sampling.ratios[other]:
                raise SpecValueError(
                    f"tasks '{first}' and '{other}' share the batches of dataset '{stream.dataset}', "
                    "so they are sampled together and need the same ratio",
                    spec.span("train", "sampling", other),
                    hint=f"write {other} = {sampling.ratios[first]!r}, the same as {first}",
                )


CHECKS: tuple[Callable[[Spec], None], ...] = (
    check_pretrained,
    check_necks,
    check_square_input,
    check_datasets,
    check_joined_datasets,
    check_formats_serve,
    check_joined_augment,
    check_dense_augment,
    check_resize,
    check_dataset_classes,
    check_task_backbones,
    check_references,
    check_classes,
    check_heads_fit,
    check_crops,
    check_losses_fit,
    check_sampling,
    check_binary_positive,
    check_balanced,
    check_joint_sampling,
    check_shared_batches,
    check_phases,
    check_cyclic_bounds,
)


def run_checks(spec: Spec, checks=CHECKS) -> Spec:
    """Run ``checks`` in order; the first mistake is raised, located in the spec's source."""
    for check in checks:
        try:
            check(spec)
        except Exception as error:
            if hasattr(error, "with_source"):
                error.with_source(spec.source)
            raise
    return spec


__all__ = ["CHECKS", "run_checks"]
