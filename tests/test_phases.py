"""Phases freeze exactly the modules they name, BatchNorm statistics included."""

from __future__ import annotations

import copy

import torch

from mtdsl.compiler import compile_text
from mtdsl.train.loop.freezing import Phase, apply_phase, phase_at, phases_of

SPEC = """
model phased
input 3x32x32
backbone trunk = timm("test_resnet")
dataset d = synthetic(count = 32, size = 32)
task a: classify(d) { classes = 3 }
task b: classify(d) { classes = 3; branch = trunk.stage3 }
train {
    phase heads    { epochs = 1; freeze = [shared] }
    phase all      { epochs = 2 }
    phase polish   { epochs = 1; freeze = [backbones, a.head] }
}
"""


def compiled():
    compilation = compile_text(SPEC, "phased.mtl")
    return compilation, phases_of(compilation.graph, compilation.spec.train, compilation.spec.model)


def test_phases_list_their_modules_by_name():
    _, phases = compiled()
    assert [p.name for p in phases] == ["heads", "all", "polish"]
    assert set(phases[0].frozen) == {"backbone.trunk.stem", "backbone.trunk.stage1", "backbone.trunk.stage2",
                                     "backbone.trunk.stage3"}
    assert phases[1].frozen == ()
    assert "heads.a" in phases[2].frozen and "heads.b" not in phases[2].frozen
    assert "branches.b.stage4" in phases[2].frozen and "backbone.trunk.stage4" in phases[2].frozen
    assert [phase_at(phases, e).name for e in range(5)] == ["heads", "all", "all", "polish", "polish"]


def _step(model, tasks=("a", "b")):
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    for _ in range(2):
        outputs = model(torch.randn(4, 3, 32, 32), tasks=list(tasks))
        loss = sum(o.square().mean() for o in outputs.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _changed(before, after):
    return {key for key in before if not torch.equal(before[key], after[key])}


def test_a_phase_changes_nothing_it_freezes_and_everything_it_trains():
    compilation, phases = compiled()
    model = compilation.model()
    for phase in phases:
        apply_phase(model, phase)
        before = copy.deepcopy(model.state_dict())
        _step(model)
        changed = _changed(before, model.state_dict())
        frozen_keys = {k for k in before if any(k.startswith(path + ".") for path in phase.frozen)}
        assert not changed & frozen_keys, (phase.name, sorted(changed & frozen_keys)[:3])
        trained = {k for k in before if k not in frozen_keys and k.endswith(".weight")}
        assert trained <= changed, (phase.name, sorted(trained - changed)[:3])


def test_frozen_batchnorm_stays_in_eval_mode():
    compilation, phases = compiled()
    model = compilation.model()
    apply_phase(model, phases[0])
    stem_norms = [m for m in model.get_submodule("backbone.trunk.stem").modules()
                  if isinstance(m, torch.nn.BatchNorm2d)]
    assert stem_norms and not any(m.training for m in stem_norms)
    assert model.get_submodule("backbone.trunk.stage4").training
    apply_phase(model, phases[1])
    assert all(m.training for m in stem_norms)


def test_a_batchnorm_eval_phase_trains_scale_and_shift_but_keeps_the_statistics():
    compilation, _ = compiled()
    model = compilation.model()
    apply_phase(model, Phase("all", 1, batchnorm="eval"))
    norms = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    assert norms and not any(m.training for m in norms.values())
    before = copy.deepcopy(model.state_dict())
    _step(model)
    changed = _changed(before, model.state_dict())
    statistics = {k for k in before if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert statistics and not changed & statistics
    scales = {f"{name}.weight" for name in norms}
    assert len(scales & changed) > len(scales) / 2  # their scale still learns (a few see no gradient in one step)
    apply_phase(model, Phase("all", 1))
    assert all(m.training for m in norms.values())


PYRAMID = """
model pyramid
input 3x64x64
backbone trunk = timm("test_resnet")
neck pyramid = bifpn(trunk, channels = 16)
dataset d = synthetic(count = 8, size = 64)
task a: classify(d) { classes = 3 }
task m: segment(d) { classes = [background, circle, square, triangle]; tap = pyramid }
"""


def test_batchnorm_eval_keeps_only_the_backbones_statistics_necks_and_heads_go_on_learning_theirs():
    """A neck's or head's BatchNorm starts at variance 1; frozen after a short heads phase it can sit far from
    the true statistics, and the head predicts one class (docs/experiments.md (c))."""
    model = compile_text(PYRAMID, "pyramid.mtl").model()
    apply_phase(model, Phase("all", 1, batchnorm="eval"))
    norms = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    backbone = {name for name in norms if name.startswith(("backbone.", "branches."))}
    new = set(norms) - backbone
    assert backbone and any(n.startswith("necks.") for n in new) and any(n.startswith("heads.") for n in new)
    assert not any(norms[name].training for name in backbone)
    assert all(norms[name].training for name in new)
    before = copy.deepcopy(model.state_dict())
    model(torch.randn(4, 3, 64, 64))
    changed = _changed(before, model.state_dict())
    assert {f"{name}.running_mean" for name in new} <= changed
    assert not {f"{name}.running_mean" for name in backbone} & changed


def test_the_summary_counts_what_each_phase_freezes():
    from mtdsl.render.summary import summarize

    compilation, _ = compiled()
    model = compilation.model()
    summary = summarize(compilation.graph, with_flops=False)
    heads = next(p for p in summary["phases"] if p["name"] == "heads")
    stem_to_stage3 = sum(p.numel() for s in ("stem", "stage1", "stage2", "stage3")
                         for p in model.get_submodule(f"backbone.trunk.{s}").parameters())
    assert heads["frozen_params"] == stem_to_stage3
    assert heads["trainable_params"] == sum(p.numel() for p in model.parameters()) - stem_to_stage3
