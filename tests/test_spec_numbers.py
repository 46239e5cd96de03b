"""Every number a spec can set is bounded and finite, and a value past a bound is a located error.

The fields are found by walking every registered config and every spec model,
so a new numeric field without an upper bound fails
:func:`test_every_numeric_field_has_an_upper_bound`, and a new config kind
without a spec template here fails :func:`test_every_config_has_a_template`.
"""

from __future__ import annotations

import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import annotated_types
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from mtdsl.errors import MtdslError, SpecSyntaxError, SpecValueError
from mtdsl.nn.heads import HEAD_CONFIGS
from mtdsl.nn.losses import LOSS_CONFIGS
from mtdsl.nn.necks import NECK_CONFIGS
from mtdsl.spec.data import DATASETS
from mtdsl.spec.load import load_text
from mtdsl.spec.model import BACKBONES, InputSpec, TaskSpec
from mtdsl.spec.training import OPTIMIZERS, SAMPLERS, SCHEDULES, WEIGHTINGS, PhaseSpec, TaskTraining, TrainSpec

REGISTRIES = (
    HEAD_CONFIGS, NECK_CONFIGS, LOSS_CONFIGS, OPTIMIZERS, SCHEDULES, SAMPLERS, WEIGHTINGS, DATASETS, BACKBONES
)
#: Models whose fields are written as plain keys: train { }, a task block, a phase block.
PLAIN_MODELS = (TrainSpec, TaskTraining, PhaseSpec, TaskSpec, InputSpec)

_HEAD = """model m
input 3x64x64
backbone trunk = timm("test_resnet")
neck pyr = fpn(trunk, channels = 16)
dataset shapes = synthetic(count = 32)
"""
_CLASSIFY = _HEAD + "task t: classify(shapes) {{ classes = 3; {line} }}\n"
_BINARY = _HEAD + "task t: binary(shapes) {{ {line} }}\n"
_DETECT = _HEAD + "task t: detect(shapes) {{ classes = [circle, square, triangle]; {line} }}\n"
_SEGMENT = _HEAD + "task t: segment(shapes) {{ classes = [background, circle, square, triangle]; {line} }}\n"
_KEYPOINTS = _HEAD + ("task t: keypoints(shapes) {{ classes = [top_left, top_right, bottom_right, bottom_left]; "
                      "{line} }}\n")
_TRAIN = _HEAD + "task t: classify(shapes) {{ classes = 3 }}\ntrain {{ {line} }}\n"

#: Where each config's call is written; ``{call}`` is replaced by ``kind(key = value)``.
CALL_TEMPLATES: dict[str, str] = {
    "head linear": _CLASSIFY.replace("{line}", "head = {call}"),
    "head mlp": _CLASSIFY.replace("{line}", "head = {call}"),
    "head efficientdet": _DETECT.replace("{line}", "head = {call}"),
    "head segmentation": _SEGMENT.replace("{line}", "head = {call}"),
    "head heatmap": _KEYPOINTS.replace("{line}", "head = {call}"),
    "loss heatmap_focal": _KEYPOINTS.replace("{line}", "loss = {call}"),
    "loss cross_entropy": _CLASSIFY.replace("{line}", "loss = {call}"),
    "loss detection": _DETECT.replace("{line}", "loss = {call}"),
    "loss bce": _BINARY.replace("{line}", "loss = {call}"),
    "loss focal": _BINARY.replace("{line}", "loss = {call}"),
    "neck bifpn": _HEAD.replace("neck pyr = fpn(trunk, channels = 16)", "neck pyr = {call}")
    + "task t: detect(shapes) { classes = [circle, square, triangle] }\n",
    "neck fpn": _HEAD.replace("neck pyr = fpn(trunk, channels = 16)", "neck pyr = {call}")
    + "task t: detect(shapes) { classes = [circle, square, triangle] }\n",
    "neck simple_pyramid": _HEAD.replace("neck pyr = fpn(trunk, channels = 16)", "neck pyr = {call}")
    + "task t: detect(shapes) { classes = [circle, square, triangle] }\n",
    "optimizer sgd": _TRAIN.replace("{line}", "optimizer = {call}"),
    "optimizer adamw": _TRAIN.replace("{line}", "optimizer = {call}"),
    "schedule constant": _TRAIN.replace("{line}", "schedule = {call}"),
    "schedule cyclic": _TRAIN.replace("{line}", "schedule = {call}"),
    "schedule cosine": _TRAIN.replace("{line}", "schedule = {call}"),
    "schedule step": _TRAIN.replace("{line}", "schedule = {call}"),
    "schedule poly": _TRAIN.replace("{line}", "schedule = {call}"),
    "sampling strategy proportional": _TRAIN.replace("{line}", "sampling = {call}"),
    "sampling strategy fixed": _TRAIN.replace("{line}", "sampling = {call}"),
    "sampling strategy equal": _TRAIN.replace("{line}", "sampling = {call}"),
    "sampling strategy round_robin": _TRAIN.replace("{line}", "sampling = {call}"),
    "sampling strategy sequential": _TRAIN.replace("{line}", "sampling = {call}"),
    "sampling strategy joint": _TRAIN.replace("{line}", "sampling = {call}"),
    "sampling strategy dynamic": _TRAIN.replace("{line}", "sampling = {call}").replace(
        "classes = 3 }", "classes = 3; target = 0.9 }"
    ),
    "loss weighting constant": _TRAIN.replace("{line}", "weighting = {call}"),
    "loss weighting uncertainty": _TRAIN.replace("{line}", "weighting = {call}"),
    "loss weighting dwa": _TRAIN.replace("{line}", "weighting = {call}"),
    "dataset format synthetic": _HEAD.replace("dataset shapes = synthetic(count = 32)", "dataset shapes = {call}")
    + "task t: classify(shapes) { classes = 3 }\n",
    "dataset format folder": _HEAD + "dataset d = {call}\ntask t: classify(d) { classes = 3 }\n",
    "dataset format csv": _HEAD + "dataset d = {call}\ntask t: classify(d) { classes = 3 }\n",
    "dataset format json": _HEAD + "dataset d = {call}\ntask t: classify(d) { classes = 3 }\n",
    "dataset format coco": _HEAD + "dataset d = {call}\ntask t: detect(d) { classes = [cat] }\n",
    "dataset format masks": _HEAD + "dataset d = {call}\ntask t: segment(d) { classes = [a, b] }\n",
    "dataset format yolo": _HEAD + "dataset d = {call}\ntask t: detect(d) { classes = [cat] }\n",
    "dataset format voc": _HEAD + "dataset d = {call}\ntask t: detect(d) { classes = [cat] }\n",
    "backbone source timm": _HEAD.replace('backbone trunk = timm("test_resnet")', "backbone trunk = {call}")
    + "task t: classify(shapes) { classes = 3 }\n",
}
#: Arguments a call needs besides the one under test: (field, as written).
REQUIRED_ARGUMENTS = {
    "mlp": [("hidden", "[64]")],
    "fpn": [("backbone", "trunk")],
    "simple_pyramid": [("backbone", "trunk")],
    "bifpn": [("backbone", "trunk"), ("channels", "channels = 16")],
    "fixed": [("t", "t = 1")],
    "folder": [("root", '"data"')],
    "csv": [("path", '"labels.csv"'), ("images", 'images = "img"')],
    "json": [("path", '"labels.json"'), ("images", 'images = "img"')],
    "coco": [("annotations", '"instances.json"'), ("images", 'images = "img"')],
    "masks": [("images", 'images = "img"'), ("masks", 'masks = "masks"')],
    "yolo": [("data", '"data.yaml"')],
    "voc": [("root", '"VOC2007"')],
    "timm": [("model", '"test_resnet"')],
}
#: Where each plain model's keys are written; ``{line}`` is replaced by ``key = value``.
PLAIN_TEMPLATES: dict[type[BaseModel], str] = {
    TrainSpec: _TRAIN,
    TaskTraining: _CLASSIFY,
    TaskSpec: _CLASSIFY.replace("classes = 3; ", ""),
    PhaseSpec: _HEAD + "task t: classify(shapes) {{ classes = 3 }}\ntrain {{ phase p {{ epochs = 1; {line} }} }}\n",
}


@dataclass(frozen=True)
class Bounded:
    """One numeric field, or the items of a list field, and its upper bound."""

    owner: str
    template: str
    field: str
    kind: type
    bound: float
    inclusive: bool
    shape: str  # "scalar", "list" or "pair": how a value is written

    @property
    def over(self) -> str:
        """The smallest value past the bound, as spec text."""
        if not self.inclusive:
            value: float = self.bound
        elif self.kind is int:
            value = int(self.bound) + 1
        else:
            value = math.nextafter(self.bound, math.inf)
        return repr(value) if self.kind is float or not float(value).is_integer() else str(int(value))

    def spec(self) -> tuple[str, str]:
        """(spec text, the value text whose position the error must point at)."""
        value = {"scalar": self.over, "list": f"[{self.over}]", "pair": f"[{self.over}, 0.5]"}[self.shape]
        written = f"{self.field} = {value}"
        if "{call}" in self.template:
            kind = self.owner.split()[-1]
            required = [text for field, text in REQUIRED_ARGUMENTS.get(kind, []) if field != self.field]
            written = f"{kind}({''.join(text + ', ' for text in required)}{written})"
        elif self.field in ("height", "width"):
            side = {"height": f"3x{self.over}x64", "width": f"3x64x{self.over}"}[self.field]
            return _HEAD.replace("input 3x64x64", f"input {side}") + "task t: classify(shapes) { classes = 3 }\n", side
        template = re.sub(rf"\b{self.field} = [^;{{}}]*; ", "", self.template)  # the template's own value
        text = template.replace("{call}", written).replace("{line}", written).replace("{{", "{").replace("}}", "}")
        return text, value


def _upper(metadata: list[object]) -> tuple[float, bool] | None:
    for item in metadata:
        if isinstance(item, annotated_types.Le):
            return float(item.le), True
        if isinstance(item, annotated_types.Lt):
            return float(item.lt), False
    return None


Leaf = tuple[type, tuple[float, bool] | None, str]


def _leaves(annotation: object, metadata: list[object], shape: str) -> list[Leaf]:
    """(number type, upper bound, shape) of every number an annotation holds."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        inner = list(metadata)
        for extra in args[1:]:
            inner += extra.metadata if isinstance(extra, FieldInfo) else [extra]
        return _leaves(args[0], inner, shape)
    if origin in (typing.Union, types.UnionType):
        return [leaf for arg in args if arg is not type(None) for leaf in _leaves(arg, metadata, shape)]
    if origin is list:
        return _leaves(args[0], [], "list")
    if origin is tuple:
        return _leaves(args[0], [], "pair")
    if origin is dict:
        return _leaves(args[1], [], "ratio")
    if annotation in (int, float):
        return [(annotation, _upper(metadata), shape)]
    return []


def _fields(model: type[BaseModel]) -> list[tuple[str, type, tuple[float, bool] | None, str]]:
    found = []
    for name, info in model.model_fields.items():
        for kind, bound, shape in _leaves(info.annotation, list(info.metadata), "scalar"):
            found.append((name, kind, bound, shape))
    return found


def _configs() -> list[tuple[str, type[BaseModel]]]:
    return [(f"{registry.what} {kind}", registry.get(kind)) for registry in REGISTRIES for kind in registry.kinds()]


def _bounded() -> list[Bounded]:
    cases = []
    for owner, model in _configs():
        for name, kind, bound, shape in _fields(model):
            if bound is None or shape == "ratio":
                continue  # unbounded fields fail the test below; ratios are keywords (see test_fixed_ratio…)
            cases.append(Bounded(owner, CALL_TEMPLATES[owner], name, kind, *bound, shape))
    for model, template in PLAIN_TEMPLATES.items():
        for name, kind, bound, shape in _fields(model):
            if bound is not None:
                cases.append(Bounded(model.__name__, template, name, kind, *bound, shape))
    for name in ("height", "width"):
        bound = _upper(list(InputSpec.model_fields[name].metadata))
        assert bound is not None
        cases.append(Bounded("InputSpec", "", name, int, *bound, "scalar"))
    return cases


BOUNDED = _bounded()


def test_every_config_has_a_template() -> None:
    assert {owner for owner, _ in _configs()} <= set(CALL_TEMPLATES)


@pytest.mark.parametrize(
    "model", [model for _, model in _configs()] + list(PLAIN_MODELS), ids=lambda m: m.__name__
)
def test_every_numeric_field_has_an_upper_bound(model: type[BaseModel]) -> None:
    unbounded = [name for name, _, bound, _ in _fields(model) if bound is None]
    assert not unbounded, f"{model.__name__}: give {unbounded} an upper bound (le= or lt=)"


def test_bounds_cover_the_fields_of_the_issue() -> None:
    names = {(case.owner, case.field) for case in BOUNDED}
    for expected in [
        ("TrainSpec", "seed"),
        ("optimizer adamw", "betas"),
        ("dataset format synthetic", "size"),
        ("neck bifpn", "channels"),
        ("neck bifpn", "repeats"),
        ("head efficientdet", "depth"),
        ("head mlp", "hidden"),
        ("dataset format synthetic", "count"),
        ("TrainSpec", "batch_size"),
        ("TrainSpec", "epochs"),
        ("TrainSpec", "workers"),
        ("head efficientdet", "max_detections"),
        ("InputSpec", "height"),
    ]:
        assert expected in names


@pytest.mark.parametrize("case", BOUNDED, ids=lambda c: f"{c.owner}.{c.field}")
def test_value_past_the_bound_is_a_located_error(case: Bounded) -> None:
    text, value = case.spec()
    with pytest.raises(SpecValueError) as caught:
        load_text(text, "bounds.mtl")
    error = caught.value
    offset = text.index(value, text.index(case.field) if case.field in text else 0)
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    assert error.span is not None, error.render()
    assert error.span.line == line, error.render()
    assert error.span.column <= column + len(value), error.render()
    assert case.field in error.message or "input shape" in error.message, error.render()


def test_fixed_ratio_past_its_bound_is_a_located_error() -> None:
    text = _TRAIN.replace("{line}", "sampling = fixed(t = 10001)").replace("{{", "{").replace("}}", "}")
    with pytest.raises(SpecValueError, match="t = 10001") as caught:
        load_text(text, "bounds.mtl")
    assert caught.value.span is not None and caught.value.span.line == text.count("\n")


@pytest.mark.parametrize("count", [10**7, 10**20])
def test_huge_class_counts_fail_before_naming_the_classes(count: int) -> None:
    text = _CLASSIFY.replace("classes = 3; {line}", f"classes = {count}").replace("{{", "{").replace("}}", "}")
    with pytest.raises(SpecValueError, match="at most 100000 classes"):
        load_text(text, "bounds.mtl")


def test_lists_have_a_bounded_length() -> None:
    ratios = ", ".join(["1"] * 17)
    head = f"head = efficientdet(aspect_ratios = [{ratios}])"
    text = _DETECT.replace("{line}", head).replace("{{", "{").replace("}}", "}")
    with pytest.raises(SpecValueError, match="aspect_ratios"):
        load_text(text, "bounds.mtl")


# ------------------------------------------------------------ non-finite numbers

FLOAT_CASES = [case for case in BOUNDED if case.kind is float]


@pytest.mark.parametrize("written", ["1e999", "-1e999", "1" + "0" * 400 + ".0"])
def test_a_number_too_large_for_a_float_is_a_syntax_error(written: str) -> None:
    text = _TRAIN.replace("{line}", f"optimizer = sgd(lr = {written})").replace("{{", "{").replace("}}", "}")
    with pytest.raises(SpecSyntaxError, match="too large") as caught:
        load_text(text, "nonfinite.mtl")
    assert caught.value.span is not None and caught.value.span.column == text.splitlines()[-1].index(written) + 1


@pytest.mark.parametrize("word", ["inf", "nan", "-inf", "infinity", "NaN"])
@pytest.mark.parametrize("case", FLOAT_CASES, ids=lambda c: f"{c.owner}.{c.field}")
def test_inf_and_nan_are_refused_in_every_float_field(case: Bounded, word: str) -> None:
    """As a name (``= nan``), a string (``= "inf"``) or a ``--set`` value, never a float."""
    for written in (f'"{word}"', word if word.isalpha() else None):
        if written is None or case.field in ("height", "width"):
            continue
        bad = Bounded(case.owner, case.template, case.field, float, 0.0, True, case.shape)
        text, _ = bad.spec()
        text = text.replace(bad.over, written, 1)
        with pytest.raises(MtdslError) as caught:
            load_text(text, "nonfinite.mtl")
        assert caught.value.span is not None, caught.value.render()


@pytest.mark.parametrize("raw", ["inf", "nan", "1e999", "-inf", "Infinity"])
def test_inf_and_nan_cannot_come_in_through_set(raw: str) -> None:
    text = (_TRAIN.replace("{line}", "optimizer = sgd(lr = ${lr})").replace("{{", "{").replace("}}", "}"))
    text = "let lr = 0.1\n" + text
    with pytest.raises(SpecValueError, match="lr") as caught:
        load_text(text, "nonfinite.mtl", overrides={"lr": raw})
    assert caught.value.span is not None and caught.value.span.line == text.count("\n")


def _limits_table() -> list[str]:
    docs = (Path(__file__).parent.parent / "docs" / "language.md").read_text(encoding="utf-8")
    section = docs.split("### Limits", 1)[1].split("\n## ", 1)[0]
    return [row for row in section.splitlines() if row.startswith("| ") and not row.startswith("| fields")]


@pytest.mark.parametrize("case", BOUNDED, ids=lambda c: f"{c.owner}.{c.field}")
def test_every_bound_is_documented(case: Bounded) -> None:
    bound = f"`{int(case.bound)}`" if float(case.bound).is_integer() else f"`{case.bound}`"
    rows = [row for row in _limits_table() if f"`{case.field}`" in row and bound in row.split("|")[2]]
    assert rows, f"docs/language.md's Limits table lacks `{case.field}` with {bound}"


@pytest.mark.parametrize(
    "line, written",
    [
        ("let parts = 0.5/1e400", "1e400"),
        ("let parts = 0.5/" + "9" * 5000, "9" * 5000),
        ("input 3x" + "9" * 5000 + "x64", "3x"),
        ("let n = " + "9" * 5000, "9" * 5000),
    ],
    ids=["ratio", "ratio digits", "shape digits", "integer digits"],
)
def test_every_number_literal_is_finite(line: str, written: str) -> None:
    """Ratios and shapes too: a float that overflows, or more digits than Python converts."""
    with pytest.raises(SpecSyntaxError, match="too large") as caught:
        load_text(_HEAD + line + "\ntask t: classify(shapes) { classes = 3 }\n", "nonfinite.mtl")
    span = caught.value.span
    assert span is not None and span.line == _HEAD.count("\n") + 1 and span.column == line.index(written) + 1


@pytest.mark.parametrize("word", ["true", "false"])
@pytest.mark.parametrize(
    "case", [c for c in BOUNDED if c.field not in ("height", "width")], ids=lambda c: f"{c.owner}.{c.field}"
)
def test_a_boolean_is_not_a_number(case: Bounded, word: str) -> None:
    """pydantic would read true as 1 (epochs = true trains one epoch); every number field refuses it."""
    text, _value = case.spec()
    text = text.replace(case.over, word, 1)
    with pytest.raises(SpecValueError, match="true and false are booleans") as caught:
        load_text(text, "booleans.mtl")
    assert caught.value.span is not None and caught.value.hint and "quote" in caught.value.hint


@pytest.mark.parametrize("value, expected", [("none", None), ("5", 5.0), ("0.5", 0.5)])
def test_grad_clip_none_is_the_default_so_a_variable_can_switch_it(value: str, expected: float | None) -> None:
    text = "let clip = none\n" + _TRAIN.replace("{line}", "grad_clip = ${clip}").replace("{{", "{").replace("}}", "}")
    assert load_text(text, "clip.mtl").train.grad_clip is None
    assert load_text(text, "clip.mtl", overrides={"clip": value}).train.grad_clip == expected


def test_grad_clip_refuses_other_words_with_a_location() -> None:
    text = _TRAIN.replace("{line}", "grad_clip = off").replace("{{", "{").replace("}}", "}")
    with pytest.raises(SpecValueError, match="grad_clip") as caught:
        load_text(text, "clip.mtl")
    assert caught.value.span is not None and caught.value.span.line == text.count("\n")
