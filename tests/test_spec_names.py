"""Declared names that would break the model, generated code or freeze targets are refused where they are declared."""

from __future__ import annotations

import keyword

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from mtdsl.errors import SpecNameError
from mtdsl.graph.build import build_graph
from mtdsl.nn.model import MultiTaskModel
from mtdsl.spec.load import load_text
from mtdsl.spec.names import FREEZE_WORDS

MODULE_ATTRIBUTES = sorted(name for name in dir(nn.ModuleDict()) if name.isidentifier())
KEYWORDS = [word for word in keyword.kwlist]


def spec(task: str = "breed", backbone: str = "trunk", neck: str = "pyr", dataset: str = "shapes") -> str:
    return (
        "model m\ninput 3x64x64\n"
        f'backbone {backbone} = timm("test_resnet")\n'
        f"neck {neck} = fpn({backbone}, channels = 16)\n"
        f"dataset {dataset} = synthetic(count = 32)\n"
        f"task {task}: classify({dataset}) {{ classes = 3 }}\n"
        f"task boxes: detect({dataset}) {{ classes = [circle, square, triangle]; tap = {neck} }}\n"
    )


def declared_at(text: str, name: str, what: str) -> tuple[int, int]:
    line = next(i for i, row in enumerate(text.split("\n"), 1) if row.split(":")[0].split()[:2] == [what, name])
    return line, len(what) + 2


SAMPLE = ["train", "eval", "forward", "to", "cuda", "type", "float", "training", "state_dict", "__init__"]
SAMPLE += ["class", "None"]


@pytest.mark.parametrize(
    "name, what",
    [(name, "task") for name in MODULE_ATTRIBUTES + KEYWORDS]
    + [(name, what) for name in SAMPLE for what in ("backbone", "neck", "dataset")],
)
def test_module_attributes_and_keywords_are_refused_at_the_declaration(name: str, what: str) -> None:
    text = spec(**{what: name})
    with pytest.raises(SpecNameError, match=f"a {what} cannot be named '{name}'") as caught:
        load_text(text, "names.mtl")
    error = caught.value
    assert (error.span.line, error.span.column) == declared_at(text, name, what)
    assert error.hint and "rename" in error.hint


def test_the_shadowing_message_says_why() -> None:
    with pytest.raises(SpecNameError, match=r"would shadow nn\.Module\.train"):
        load_text(spec(task="train"), "names.mtl")


@pytest.mark.parametrize("what", ["task", "backbone", "neck"])
@pytest.mark.parametrize("word", list(FREEZE_WORDS))
def test_freeze_words_are_refused_for_every_freeze_target(word: str, what: str) -> None:
    with pytest.raises(SpecNameError, match=rf"freeze = \[{word}\] already means"):
        load_text(spec(**{what: word}), "names.mtl")


def test_a_neck_cannot_take_the_graph_input_node_name() -> None:
    with pytest.raises(SpecNameError, match="a neck cannot be named 'input'"):
        load_text(spec(neck="input"), "names.mtl")


@pytest.mark.parametrize("what", ["task", "backbone", "dataset"])
def test_input_names_a_task_backbone_or_dataset(what: str) -> None:
    """``input`` is an ordinary name everywhere but for a neck: the model runs with it."""
    loaded = load_text(spec(**{what: "input"}), "names.mtl")
    model = MultiTaskModel(build_graph(loaded), load_pretrained=False)
    outputs = model.eval()(torch.zeros(1, 3, 64, 64))
    assert set(outputs) == set(loaded.model.tasks)


def test_statement_keywords_and_class_names_stay_ordinary_names() -> None:
    text = spec().replace("classes = 3", "classes = [train, phase, eval, to]")
    assert load_text(text, "names.mtl").model.tasks["breed"].classes == ["train", "phase", "eval", "to"]


names = st.one_of(
    st.sampled_from(MODULE_ATTRIBUTES + KEYWORDS + list(FREEZE_WORDS) + ["input"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
)


@pytest.mark.slow  # builds and runs a model per example
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=names, what=st.sampled_from(["task", "backbone", "neck", "dataset"]))
def test_a_declared_name_is_refused_where_declared_or_the_model_builds(name: str, what: str) -> None:
    """No name gets past the spec and then breaks the model (nn.ModuleDict raised KeyError for 'train')."""
    text = spec(**{what: name})
    try:
        loaded = load_text(text, "names.mtl")
    except SpecNameError as error:
        assert error.span is not None and name in text.split("\n")[error.span.line - 1]
        return
    model = MultiTaskModel(build_graph(loaded), load_pretrained=False)
    assert set(model.eval()(torch.zeros(1, 3, 64, 64))) == set(loaded.model.tasks)
