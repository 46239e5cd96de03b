"""AST → validated :class:`~mtdsl.spec.document.Spec`.

Each statement becomes a pydantic object; call-valued keys (``head``,
``loss``, ``optimizer``…) are validated against their registered kinds.
Cross-field rules (references, branch points, ratios) are not checked here
but in :mod:`mtdsl.spec.checks`.

>>> from mtdsl.frontend.parser import parse
>>> tree = parse('''model demo
... backbone trunk = timm("test_resnet")
... dataset shapes = synthetic()
... task colour: classify(shapes) { classes = 3; head = linear(pool = avg+max) }''')
>>> spec = lower(tree, Source("demo.mtl", ""), {})
>>> spec.model.tasks["colour"].head.pool, spec.train.tasks["colour"].loss.kind
('avg+max', 'cross_entropy')
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from mtdsl.errors import Source, Span, SpecNameError, SpecValueError, did_you_mean, listing
from mtdsl.frontend import ast
from mtdsl.kinds import TASK_KINDS
from mtdsl.spec.augment_lowering import augment_ops, without_augment
from mtdsl.spec.data import DATASETS
from mtdsl.spec.document import SpanKey, Spec
from mtdsl.spec.fields import MAX_SIDE
from mtdsl.spec.heads import HEAD_CONFIGS, heads_for
from mtdsl.spec.losses import LOSS_CONFIGS, losses_for
from mtdsl.spec.model import BACKBONES, InputSpec, ModelSpec, TaskSpec
from mtdsl.spec.names import check_declared_name
from mtdsl.spec.necks import NECK_CONFIGS
from mtdsl.spec.references import SegmentRef
from mtdsl.spec.registry import Registry
from mtdsl.spec.scaling import efficientdet_scaling
from mtdsl.spec.tracking import lower_track
from mtdsl.spec.training import (
    AVERAGES,
    LR_SCALES,
    OPTIMIZERS,
    SAMPLERS,
    SCHEDULES,
    WEIGHTINGS,
    PhaseSpec,
    TaskTraining,
    TrainSpec,
)
from mtdsl.spec.values import BOOLEANS, Fields, assignments, block_fields, build_config, plain_value, validate
from mtdsl.spec.variables import Variables

StatementT = TypeVar("StatementT", bound=ast.Statement)

MODEL_TASK_KEYS = ("classes", "head", "backbone", "branch", "tap", "input", "crops")
TRAIN_TASK_KEYS = ("loss", "weight", "batch_size", "positive", "label", "balanced", "target", "augment")
TRAIN_CALL_KEYS: dict[str, Registry[Any]] = {
    "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "sampling": SAMPLERS, "weighting": WEIGHTINGS,
    "lr_scale": LR_SCALES,
}


def lower(tree: ast.SpecFile, source: Source, overrides: dict[str, ast.Value]) -> Spec:
    """Lower a parsed file; ``overrides`` are ``--set`` values already parsed."""
    spec_dir = Path(source.path).resolve().parent if source.path and not source.path.startswith("<") else None
    variables = Variables.from_spec(tree, overrides, spec_dir)
    return _Lowering(tree, source, variables).run()


class _Lowering:
    def __init__(self, tree: ast.SpecFile, source: Source, variables: Variables) -> None:
        self.tree = tree
        self.source = source
        self.variables = variables
        self.spans: dict[SpanKey, Span] = {}
        self.declared: dict[str, tuple[str, Span]] = {}

    def run(self) -> Spec:
        statements = self.tree.statements
        model = self._single(statements, ast.ModelStatement, "model NAME", required=True)
        input_statement = self._single(statements, ast.InputStatement, "input CxHxW", required=False)
        train_statement = self._single(statements, ast.TrainStatement, "train { … }", required=False)

        backbones = {}
        necks = {}
        datasets = {}
        tasks: dict[str, TaskSpec] = {}
        task_training: dict[str, TaskTraining] = {}
        for statement in statements:
            if isinstance(statement, ast.BackboneStatement):
                self._declare(statement.name, "backbone", statement.name_span)
                backbones[statement.name] = self._backbone(statement)
            elif isinstance(statement, ast.NeckStatement):
                self._declare(statement.name, "neck", statement.name_span)
                necks[statement.name] = self._neck(statement)
            elif isinstance(statement, ast.DatasetStatement):
                self._declare(statement.name, "dataset", statement.name_span)
                datasets[statement.name] = self._dataset(statement)
        for statement in statements:
            if isinstance(statement, ast.TaskStatement):
                self._declare(statement.name, "task", statement.name_span)
                tasks[statement.name], task_training[statement.name] = self._task(statement, list(backbones), necks)

        assert isinstance(model, ast.ModelStatement)
        self.spans[("model",)] = model.name_span
        input_spec = InputSpec()
        if isinstance(input_statement, ast.InputStatement):
            self.spans[("input",)] = input_statement.shape.span
            input_spec = self._input(input_statement.shape)
        model_spec = ModelSpec(name=model.name, input=input_spec, backbones=backbones, necks=necks, tasks=tasks)
        train = self._train(train_statement if isinstance(train_statement, ast.TrainStatement) else None, task_training)
        values = {name: self.variables.value(name) for name in self.variables.names()}
        return Spec(model_spec, datasets, train, self.source, values, self.spans)

    # ------------------------------------------------------------- helpers

    def _single(self, statements: Sequence[ast.Statement], kind: type[StatementT], form: str,
                required: bool) -> StatementT | None:
        found = [s for s in statements if isinstance(s, kind)]
        if len(found) > 1:
            raise SpecNameError(
                f"'{form.split()[0]}' appears {len(found)} times (first on line {found[0].span.line})",
                found[1].span,
                hint="a spec describes one model: keep a single statement",
            )
        if not found and required:
            # Point at the first statement (comments above it are not the problem), or at line 1 of an empty file.
            first = statements[0].span if statements else Span(1, 1, 1, 2)
            raise SpecNameError(
                f"the spec has no '{form}' statement",
                Span(first.line, first.column, first.line, first.column + 1),
                hint=f"start the file with '{form}', e.g. 'model plants'",
            )
        return found[0] if found else None

    def _declare(self, name: str, what: str, span: Span) -> None:
        check_declared_name(name, what, span)
        if name in self.declared:
            other, first = self.declared[name]
            raise SpecNameError(
                f"'{name}' is already declared as a {other} on line {first.line}",
                span,
                hint=f"give this {what} another name: backbones, datasets and tasks share one namespace",
            )
        self.declared[name] = (what, span)
        self.spans[(what, name)] = span

    def _record(self, prefix: SpanKey, fields: Fields) -> None:
        for key, span in fields.value_spans.items():
            self.spans[prefix + tuple(key.split("."))] = span

    def _input(self, value: ast.Shape | ast.Call) -> InputSpec:
        if isinstance(value, ast.Shape):
            return self._input_shape(list(value.dims), value.span)
        form = "efficientdet(D), D from 0 to 7"
        if value.name != "efficientdet":
            raise SpecNameError(
                f"unknown input size rule '{value.name}'",
                value.name_span,
                expected=f"a shape such as 3x224x224, or {form}",
                hint=did_you_mean(value.name, ["efficientdet"]),
            )
        scale = plain_value(value.args[0], self.variables) if len(value.args) == 1 and not value.kwargs else None
        if not isinstance(scale, int) or isinstance(scale, bool) or not 0 <= scale <= 7:
            raise SpecValueError(
                "efficientdet(...) takes one whole number from 0 to 7, the D index",
                value.span,
                expected=form,
                hint="e.g. input efficientdet(0) is 3x512x512, EfficientDet-D0's input",
            )
        side = efficientdet_scaling(scale)["image_size"]
        return InputSpec(channels=3, height=side, width=side)

    def _input_shape(self, dims: list[int], span: Span) -> InputSpec:
        try:
            return InputSpec.from_dims(dims)
        except ValidationError as error:
            first = error.errors()[0]
            message = first["msg"].removeprefix("Value error, ").removeprefix("Input ")
            reason = f"{first['loc'][0]} {message}"  # "height should be greater than 0"
        except ValueError as error:
            reason = str(error)
        height, width = (dims[1:3] + [224, 224])[:2]
        raise SpecValueError(
            f"invalid input shape {'x'.join(map(str, dims))}: {reason}",
            span,
            expected=f"3 x height x width, each side from 1 to {MAX_SIDE}, e.g. 3x224x224",
            hint=f"write 3x{min(max(height, 1), MAX_SIDE)}x{min(max(width, 1), MAX_SIDE)}",
        ) from None

    # ---------------------------------------------------------- statements

    def _backbone(self, statement: ast.BackboneStatement):
        config = self._call_with_block(statement.source, statement.body, BACKBONES, f"backbone '{statement.name}'")
        self.spans[("backbone", statement.name, "model")] = (
            statement.source.args[0].span if statement.source.args else statement.source.span
        )
        entries = statement.body.entries if statement.body else ()
        for keyword in statement.source.kwargs:
            self.spans[("backbone", statement.name, keyword.name)] = keyword.value.span
        for entry in entries:
            if isinstance(entry, ast.Assignment):
                self.spans[("backbone", statement.name, entry.key)] = entry.value.span
        return config

    def _neck(self, statement: ast.NeckStatement):
        config = self._call_with_block(statement.source, statement.body, NECK_CONFIGS, f"neck '{statement.name}'")
        if statement.source.args:
            self.spans[("neck", statement.name, "backbone")] = statement.source.args[0].span
        for keyword in statement.source.kwargs:
            self.spans[("neck", statement.name, keyword.name)] = keyword.value.span
        for entry in statement.body.entries if statement.body else ():
            if isinstance(entry, ast.Assignment):
                self.spans[("neck", statement.name, entry.key)] = entry.value.span
        return config

    def _dataset(self, statement: ast.DatasetStatement):
        what = f"dataset '{statement.name}'"
        source, body, augment = without_augment(statement.source, statement.body, what)
        config = self._call_with_block(source, body, DATASETS, what)
        entries = [(arg.name, arg.value) for arg in source.kwargs]
        entries += [(entry.key, entry.value) for entry in body.entries
                    if isinstance(entry, ast.Assignment)] if body else []
        for key, value in entries:  # so checks can point at a dataset's keys, and at one item of a list
            self.spans[("dataset", statement.name, key)] = value.span
            for index, item in enumerate(value.items if isinstance(value, ast.ListValue) else ()):
                self.spans[("dataset", statement.name, key, str(index))] = item.span
        update: dict[str, object] = {"name": statement.name}
        if augment is not None:
            self.spans[("dataset", statement.name, "augment")] = augment.span
            for index, op in enumerate(augment.items if isinstance(augment, ast.ListValue) else ()):
                self.spans[("dataset", statement.name, "augment", str(index))] = op.span
            update["augment"] = augment_ops(augment, self.variables, what)
        return config.model_copy(update=update)

    def _call_with_block(self, call: ast.Call, body: ast.Block | None, registry, what: str):
        if body is None:
            return build_config(call, registry, self.variables, what)
        merged = ast.Call(
            call.name,
            call.name_span,
            call.args,
            call.kwargs
            + tuple(
                ast.KeywordArgument(entry.key, entry.key_span, entry.value, entry.span)
                for entry in assignments(body, what)
            ),
            call.span,
        )
        return build_config(merged, registry, self.variables, what)

    def _task(self, statement: ast.TaskStatement, backbones: list[str], necks: dict) -> tuple[TaskSpec, TaskTraining]:
        kind_call = statement.kind
        name = statement.name
        what = f"task '{name}'"
        if kind_call.name not in TASK_KINDS:
            raise SpecNameError(
                f"unknown task kind '{kind_call.name}'",
                kind_call.name_span,
                expected=f"one of: {listing(TASK_KINDS)}",
                hint=did_you_mean(kind_call.name, TASK_KINDS),
            )
        kind = kind_call.name
        if len(kind_call.args) != 1:
            raise SpecValueError(
                f"{kind}(...) takes exactly one positional argument, the dataset",
                kind_call.span,
                expected=f"{kind}(DATASET), e.g. {kind}(pets)",
            )
        datasets = self._task_datasets(kind_call.args[0], what)
        self.spans[("task", name, "dataset")] = kind_call.args[0].span
        for dataset in datasets:
            self.spans[("task", name, "dataset", dataset.id)] = dataset.span
        self.spans[("task", name, "kind")] = kind_call.name_span

        entries: list[tuple[str, Span, ast.Value, Span]] = [
            (kw.name, kw.name_span, kw.value, kw.value.span) for kw in kind_call.kwargs
        ]
        for entry in statement.body.entries if statement.body else ():
            if isinstance(entry, ast.Phase):
                raise SpecNameError(
                    f"'phase' blocks belong in 'train', not in {what}",
                    entry.span,
                    hint="move it into the train { … } block",
                )
            entries.append((entry.key, entry.key_span, entry.value, entry.value.span))

        model_fields = Fields(what, statement.span)
        train_fields = Fields(what, statement.span)
        valid_keys = MODEL_TASK_KEYS + TRAIN_TASK_KEYS
        for key, key_span, value, value_span in entries:
            if key not in valid_keys:
                raise SpecNameError(
                    f"unknown key '{key}' in {what}",
                    key_span,
                    expected=f"one of: {listing(valid_keys, limit=None)}",
                    hint=did_you_mean(key, valid_keys),
                )
            lowered = self._task_value(key, value, kind, what)
            if key == "augment":  # so checks can point at one op
                for index, op in enumerate(value.items if isinstance(value, ast.ListValue) else ()):
                    self.spans[("task", name, "augment", str(index))] = op.span
            target = model_fields if key in MODEL_TASK_KEYS else train_fields
            target.add(key, key_span, lowered, value_span)

        if "head" not in model_fields.values:
            model_fields.values["head"] = self._default(heads_for(kind), HEAD_CONFIGS, "head", kind, kind_call)
        if "loss" not in train_fields.values:
            train_fields.values["loss"] = self._default(losses_for(kind), LOSS_CONFIGS, "loss", kind, kind_call)
        if "tap" not in model_fields.values and model_fields.values["head"].reads == "pyramid" and len(necks) == 1:
            model_fields.values["tap"] = SegmentRef(next(iter(necks)))
        if "backbone" not in model_fields.values:
            tap = model_fields.values.get("tap")
            if isinstance(tap, SegmentRef) and tap.is_whole and tap.owner in necks:
                model_fields.values["backbone"] = necks[tap.owner].backbone
            else:
                model_fields.values["backbone"] = self._infer_backbone(model_fields, backbones, what, statement)
        model_fields.values.update(name=name, kind=kind)
        train_fields.values["datasets"] = tuple(dataset.id for dataset in datasets)
        self._record(("task", name), model_fields)
        self._record(("task", name), train_fields)
        return validate(TaskSpec, model_fields, what), validate(TaskTraining, train_fields, what)

    @staticmethod
    def _task_datasets(node: ast.Value, what: str) -> tuple[ast.Name, ...]:
        """``detect(coco)`` → (coco,); ``detect(pets + coco)`` → (pets, coco)."""
        terms = node.terms if isinstance(node, ast.Sum) else (node,)
        for term in terms:
            if not isinstance(term, ast.Name):
                raise SpecValueError(
                    f"the dataset of {what} must be a dataset name, or several joined with +",
                    term.span,
                    expected="e.g. detect(coco), or detect(pets + coco) to learn from both",
                    hint="declare it with 'dataset NAME = folder(…)' and write its name here, unquoted",
                )
        named = [term for term in terms if isinstance(term, ast.Name)]  # all of them, checked above
        names = [term.id for term in named]
        repeated = next((term for i, term in enumerate(named) if term.id in names[:i]), None)
        if repeated is not None:
            raise SpecValueError(
                f"{what} lists dataset '{repeated.id}' twice",
                repeated.span,
                hint=f"write '{repeated.id}' once",
            )
        return tuple(named)

    def _task_value(self, key: str, value: ast.Value, kind: str, what: str) -> Any:
        if key == "head":
            return build_config(value, HEAD_CONFIGS, self.variables)
        if key == "loss":
            return build_config(value, LOSS_CONFIGS, self.variables)
        if key == "augment":
            return augment_ops(value, self.variables, what)
        if key == "input":
            if not isinstance(value, ast.Shape):
                raise SpecValueError(f"'input' of {what} must be a shape", value.span, expected="e.g. 3x128x128")
            return self._input_shape(list(value.dims), value.span)
        if key in ("branch", "tap", "backbone") and not isinstance(value, (ast.Ref, ast.Name)):
            raise SpecValueError(
                f"'{key}' of {what} must be a name or a dotted reference",
                value.span,
                expected="e.g. trunk.stage3 (a backbone segment) or other_task.stage3",
            )
        if key in ("branch", "tap"):
            return self._reference(value)
        return plain_value(value, self.variables)

    def _reference(self, value: ast.Value) -> Any:
        """A dotted reference or a bare name as a :class:`SegmentRef`, built here once.

        ``true``/``false`` stay booleans and text stays text: the field rejects
        the first and reads the second (``freeze = "trunk"``, a ``let`` value).
        """
        if isinstance(value, ast.Ref):
            return SegmentRef.from_parts(value.parts)
        if isinstance(value, ast.Name) and value.id not in BOOLEANS:
            return SegmentRef(value.id)
        return plain_value(value, self.variables)

    def _default(self, kinds: list[str], registry, what: str, task_kind: str, call: ast.Call):
        if not kinds:
            raise SpecValueError(
                f"no {what} is registered for task kind '{task_kind}' in this version of mtdsl",
                call.name_span,
                expected=f"{what} kinds registered: {listing(registry.kinds())}",
                hint="write the task's head = … explicitly",
            )
        return registry.get(kinds[0])()

    def _infer_backbone(self, fields: Fields, backbones: list[str], what: str, statement: ast.TaskStatement) -> str:
        for key in ("branch", "tap"):
            reference = fields.values.get(key)
            if isinstance(reference, SegmentRef) and reference.owner in backbones:
                return reference.owner
        if len(backbones) == 1:
            return backbones[0]
        if not backbones:
            raise SpecNameError(
                f"{what} needs a backbone, and the spec declares none",
                statement.name_span,
                hint="declare one, e.g. backbone trunk = timm(\"resnet18\")",
            )
        return ""  # resolved by a task branching off another task, or reported by checks

    # --------------------------------------------------------------- train

    def _train(self, statement: ast.TrainStatement | None, tasks: dict[str, TaskTraining]) -> TrainSpec:
        fields = Fields("train", statement.span if statement else Span(1, 1, 1, 2))
        phases: list[PhaseSpec] = []
        if statement is not None:
            for entry in statement.body.entries:
                if isinstance(entry, ast.Phase):
                    phases.append(self._phase(entry, phases))
                    continue
                registry = TRAIN_CALL_KEYS.get(entry.key)
                if entry.key == "ema":
                    value = self._ema(entry.value)
                elif entry.key == "lr_scale":
                    value = self._lr_scale(entry.value, allow_auto=True)
                elif registry:
                    value = build_config(entry.value, registry, self.variables)
                else:
                    value = plain_value(entry.value, self.variables)
                if entry.key == "track":  # each name checked where it is written
                    value = lower_track(entry.value, self.variables)
                if entry.key in ("phases", "tasks"):
                    raise SpecNameError(
                        f"unknown key '{entry.key}' for train",
                        entry.key_span,
                        hint="declare phases as 'phase NAME { … }' and task settings in each task block",
                    )
                fields.add(entry.key, entry.key_span, value, entry.value.span)
                if registry:
                    self._record_call(("train", entry.key), entry.value)
        self._record(("train",), fields)
        fields.values["phases"] = phases
        fields.values["tasks"] = tasks
        return validate(TrainSpec, fields, "train")

    def _ema(self, node: ast.Value) -> Any:
        """``ema = 0.9998`` (the decay), ``ema = ema(0.9998, warmup = true)``, or ``ema = none`` (off)."""
        if isinstance(node, (ast.Call, ast.Name)) and not (isinstance(node, ast.Name) and node.id == "none"):
            return build_config(node, AVERAGES, self.variables)
        if plain_value(node, self.variables) == "none":
            return None
        return build_config(ast.Call("ema", node.span, (node,), (), node.span), AVERAGES, self.variables, "ema")

    def _lr_scale(self, node: ast.Value, allow_auto: bool = False) -> Any:
        """``scale(PART = FACTOR, …)``, ``none`` (every part at the schedule's rate) or, in the train block,
        ``auto`` (the default: pretrained backbones slower, :mod:`mtdsl.spec.finetune`)."""
        if isinstance(node, ast.Call):
            return build_config(node, LR_SCALES, self.variables)
        word = plain_value(node, self.variables)  # a bare word, or a variable that holds one
        words = ["none", "auto"] if allow_auto else ["none"]
        if word in words:
            return None if word == "none" else word
        if not isinstance(word, str):  # a number: the registry says what a scaling looks like
            return build_config(node, LR_SCALES, self.variables)
        raise SpecNameError(f"unknown lr_scale {word!r}", node.span,
                            expected=f"scale(PART = FACTOR, …) or {' or '.join(words)}",
                            hint=did_you_mean(str(word), words) or "e.g. lr_scale = scale(backbones = 0.1)")

    def _record_call(self, prefix: SpanKey, value: ast.Value) -> None:
        if isinstance(value, ast.Call):
            for keyword in value.kwargs:
                self.spans[prefix + (keyword.name,)] = keyword.name_span
                self.spans[prefix + (keyword.name, "value")] = keyword.value.span

    def _phase(self, phase: ast.Phase, earlier: list[PhaseSpec]) -> PhaseSpec:
        what = f"phase '{phase.name}'"
        for other in earlier:
            if other.name == phase.name:
                raise SpecNameError(f"phase '{phase.name}' is declared twice", phase.name_span, hint="rename one")
        fields = block_fields(Fields(what, phase.span), phase.body, self.variables,
                              {"lr_scale": self._lr_scale})
        for entry in assignments(phase.body, what):
            if entry.key == "lr_scale":
                self._record_call(("phase", phase.name, "lr_scale"), entry.value)
        freeze = self._freeze_node(phase.body)
        if freeze is not None:
            fields.values["freeze"] = self._freeze_targets(freeze)
        self._record(("phase", phase.name), fields)
        self.spans[("phase", phase.name)] = phase.name_span
        if isinstance(freeze, ast.ListValue):
            for index, item in enumerate(freeze.items):
                self.spans[("phase", phase.name, "freeze", str(index))] = item.span
        fields.values["name"] = phase.name
        return validate(PhaseSpec, fields, what)

    def _freeze_targets(self, node: ast.Value) -> Any:
        """``freeze = shared`` or ``freeze = [trunk.stage3, beans.head]``: a list of references."""
        if isinstance(node, ast.ListValue):
            return [self._reference(item) for item in node.items]
        value = self._reference(node)
        return [value] if isinstance(value, (SegmentRef, str)) else value

    @staticmethod
    def _freeze_node(body: ast.Block) -> ast.Value | None:
        for entry in body.entries:
            if isinstance(entry, ast.Assignment) and entry.key == "freeze":
                return entry.value
        return None
