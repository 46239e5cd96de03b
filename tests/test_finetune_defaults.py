"""The fine-tuning defaults (``batchnorm = auto``, ``lr_scale = auto``) resolve from the backbones.

Every backbone pretrained: BatchNorm statistics kept and each backbone at 0.1 of the rate;
any backbone from scratch: neither. Written values always win, phase over train block.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtdsl.compare.single_task import single_task_specs
from mtdsl.compiler import compile_text
from mtdsl.errors import MtdslError
from mtdsl.graph.build import build_graph
from mtdsl.spec.finetune import PRETRAINED_LR_FACTOR
from mtdsl.train.loop.freezing import apply_phase, phases_of
from mtdsl.train.loop.optimizer import build_optimizer, set_learning_rate, use_phase_scales


def spec_text(pretrained: list[bool], train: str = "", phase: str = "", weights: str = "") -> str:
    backbones = "\n".join(
        f'backbone b{i} = timm("test_resnet", pretrained = {f"{weights!r}".replace(chr(39), chr(34)) if p else "none"})'
        for i, p in enumerate(pretrained))
    tasks = "\n".join(f"task t{i}: classify(d) {{ classes = 2; backbone = b{i} }}" for i in range(len(pretrained)))
    return f"""model m
input 3x32x32
{backbones}
dataset d = synthetic(count = 16, size = 32)
{tasks}
train {{
{train}
    phase heads {{ epochs = 1; freeze = [backbones] }}
    phase all {{ epochs = 1 {phase} }}
}}
"""


def phases(text: str):
    spec = compile_text(text).spec
    return {phase.name: phase for phase in phases_of(build_graph(spec), spec.train, spec.model)}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from timm import create_model

    path = tmp_path_factory.mktemp("weights") / "test_resnet.pth"
    torch.save(create_model("test_resnet", pretrained=False).state_dict(), path)
    return str(path)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(pretrained=st.lists(st.booleans(), min_size=1, max_size=3))
def test_auto_keeps_statistics_and_slows_the_backbones_only_when_every_backbone_is_pretrained(weights, pretrained):
    every = all(pretrained)
    all_phase = phases(spec_text(pretrained, weights=weights))["all"]
    assert all_phase.batchnorm == ("eval" if every else "train")
    factors = dict(all_phase.lr_scales)
    backbone_factors = {module: f for module, f in factors.items() if module.startswith("backbone.")}
    if every:
        assert backbone_factors and set(backbone_factors.values()) == {PRETRAINED_LR_FACTOR}
        assert len(backbone_factors) == len(factors)  # necks and heads keep the schedule's rate
    else:
        assert set(factors.values()) <= {1.0}


@pytest.mark.parametrize("train, phase, batchnorm, slowed", [
    ("", "", "eval", True),
    ("    batchnorm = train", "", "train", True),
    ("    batchnorm = train", "; batchnorm = eval", "eval", True),
    ("", "; batchnorm = train", "train", True),
    ("    lr_scale = none", "", "eval", False),
    ("    lr_scale = scale(heads = 2)", "", "eval", False),
])
def test_written_settings_win_phase_over_train_block(weights, train, phase, batchnorm, slowed):
    all_phase = phases(spec_text([True], train, phase, weights))["all"]
    assert all_phase.batchnorm == batchnorm
    backbone = {f for module, f in all_phase.lr_scales if module.startswith("backbone.")}
    assert (backbone == {PRETRAINED_LR_FACTOR}) == slowed


def test_each_single_task_model_gets_the_defaults_its_backbone_calls_for(weights):
    spec = compile_text(spec_text([True, False], weights=weights)).spec  # mixed: no defaults for the pair
    for name, single in single_task_specs(spec).items():
        (all_phase,) = [p for p in phases_of(build_graph(single), single.train, single.model) if p.name == "all"]
        pretrained = name == "t0"
        assert all_phase.batchnorm == ("eval" if pretrained else "train"), name


def test_a_step_under_the_defaults_keeps_the_statistics_and_moves_the_backbone_at_a_tenth(weights):
    compilation = compile_text(spec_text([True], weights=weights))
    spec, model = compilation.spec, compilation.model()
    by_name = phases(spec_text([True], weights=weights))
    all_phase = by_name["all"]
    optimizer = build_optimizer(spec.train.optimizer, model, None, list(by_name.values()))
    apply_phase(model, all_phase)
    use_phase_scales(optimizer, all_phase)
    set_learning_rate(optimizer, 0.01)
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    named = dict(model.named_parameters())
    assert {round(rates[id(p)], 12) for n, p in named.items() if n.startswith("backbone.")} == {0.001}
    assert {round(rates[id(p)], 12) for n, p in named.items() if n.startswith("heads.")} == {0.01}
    statistics = {n: b.clone() for n, b in model.named_buffers() if n.startswith("backbone.") and "running" in n}
    model(torch.randn(4, 3, 32, 32))
    assert all(torch.equal(statistics[n], b) for n, b in model.named_buffers() if n in statistics)


@pytest.mark.parametrize("value", ["nonee", "scale", "3"])
def test_an_unknown_lr_scale_word_is_a_located_error(value):
    with pytest.raises(MtdslError) as caught:
        compile_text(spec_text([False], f"    lr_scale = {value}"), "m.mtl")
    assert caught.value.span is not None and "lr_scale" in caught.value.render()
