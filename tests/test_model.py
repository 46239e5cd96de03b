from __future__ import annotations

from collections import Counter

import pytest
import torch

from mtdsl.compiler import compile_text
from mtdsl.nn.backbone import backbone_info, timm_segments
from mtdsl.nn.heads import HEAD_CONFIGS, build_head

torch.set_num_threads(2)


def test_forward_returns_a_dict_keyed_by_task(two_branch):
    model = two_branch.model().eval()
    outputs = model(torch.randn(2, 3, 64, 64))
    assert {task: tuple(out.shape) for task, out in outputs.items()} == {
        "a": (2, 2),
        "b": (2, 3),
        "c": (2, 1),
        "e": (2, 2),
    }
    assert list(model(torch.randn(1, 3, 64, 64), tasks=["e", "a"])) == ["e", "a"]


def test_unknown_task_names_the_valid_ones(two_branch):
    with pytest.raises(KeyError, match=r"unknown task 'z'.*a, b, c, e"):
        two_branch.model()(torch.randn(1, 3, 64, 64), tasks="z")


def _count_calls(model):
    calls = Counter()
    for name, module in model.named_modules():
        depth = name.count(".")
        if (name.startswith(("backbone.", "branches.")) and depth == 2) or (name.startswith("heads.") and depth == 1):
            module.register_forward_hook(lambda m, i, o, name=name: calls.update([name]))
    return calls


def test_shared_segments_run_once_and_only_needed_branches_run(two_branch):
    model = two_branch.model().eval()
    calls = _count_calls(model)
    model(torch.randn(1, 3, 64, 64))
    assert calls["backbone.trunk.stem"] == 1
    assert calls["branches.b.stage3"] == 1  # shared by b and c
    calls.clear()
    model(torch.randn(1, 3, 64, 64), tasks=["e"])
    assert set(calls) == {"backbone.trunk.stem", "backbone.trunk.stage1", "backbone.trunk.stage2",
                          "backbone.trunk.stage3", "heads.e"}


def test_parameter_counts_match_the_graph(two_branch):
    model = two_branch.model()
    assert sum(p.numel() for p in model.parameters()) == sum(d["params"] for _, d in two_branch.graph.nodes(data=True))


def test_private_branches_are_deep_copies_initialised_like_the_shared_segment(two_branch):
    model = two_branch.model()
    shared = model.backbone.trunk.stage4.state_dict()
    for owner in ("b", "c"):
        copy = model.branches[owner].stage4
        for key, value in copy.state_dict().items():
            assert torch.equal(value, shared[key])
        shared_pointers = {p.data_ptr() for p in model.backbone.trunk.stage4.parameters()}
        assert shared_pointers.isdisjoint(p.data_ptr() for p in copy.parameters())


def test_a_gradient_step_on_one_task_leaves_another_tasks_private_branch_unchanged(two_branch):
    """The thesis' worst bug: an aliased branch. Training b must not move c's own stage4."""
    torch.manual_seed(0)
    model = two_branch.model().train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 64, 64), tasks="b")["b"],
                                             torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert any(name.startswith("branches.b.stage4.") for name in changed)
    assert any(name.startswith("branches.b.stage3.") for name in changed)
    assert any(name.startswith("backbone.trunk.stem.") for name in changed)
    assert not any(name.startswith(("branches.c.", "backbone.trunk.stage3.", "backbone.trunk.stage4."))
                   for name in changed)
    assert not any(name.startswith(("heads.a.", "heads.c.", "heads.e.")) for name in changed)


@pytest.mark.parametrize("model_name", ["test_resnet", "test_efficientnet", "resnet18", "efficientnet_b0",
                                        "tf_efficientnet_lite0"])
def test_segments_output_the_channels_and_stride_timm_reports(model_name):
    info = backbone_info(model_name)
    segments = timm_segments(model_name).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for segment in info.segments:
            x = segments[segment.name](x)
            assert x.shape[1] == segment.channels
            assert 64 // x.shape[-1] == segment.reduction
        assert sum(p.numel() for p in segments.parameters()) == sum(s.parameters for s in info.segments)


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["resnet34", "resnet50", "resnet101", "efficientnet_b1", "efficientnet_b2",
                                        "efficientnet_b3", "tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_segments_of_larger_supported_backbones(model_name):
    test_segments_output_the_channels_and_stride_timm_reports(model_name)


@pytest.mark.parametrize("head_kind", HEAD_CONFIGS.kinds())
def test_every_registered_head_serves_each_of_its_task_kinds(head_kind):
    config_class = HEAD_CONFIGS.get(head_kind)
    required = {"hidden": [8]} if "hidden" in config_class.model_fields else {}
    pyramid = config_class.reads == "pyramid"
    neck = "neck pyramid = fpn(trunk, channels = 16, max_level = 5)" if pyramid else ""
    arguments = ", ".join(f"{k} = {v}" for k, v in required.items())
    for task_kind in sorted(config_class.task_kinds):
        spec = f"""
model m
input 3x64x64
backbone trunk = timm("test_resnet")
{neck}
dataset d = synthetic()
task t: {task_kind}(d) {{ classes = [x, y, z]; head = {head_kind}({arguments}) }}
"""
        compiled = compile_text(spec.replace("classes = [x, y, z]; ", "") if task_kind == "binary" else spec)
        out = compiled.model().eval()(torch.randn(2, 3, 64, 64))["t"]
        if task_kind == "detect":
            anchors = (8 * 8 + 4 * 4 + 2 * 2) * config_class().anchors_per_location
            assert [tuple(o.shape) for o in out] == [(2, anchors, 3), (2, anchors, 4)]
        elif task_kind == "segment":
            assert out.shape == (2, 3, 64, 64)
        elif task_kind == "keypoints":  # a heatmap per point at a quarter of the input's side
            assert out.shape == (2, 3, 16, 16)
        else:
            assert out.shape == (2, 1 if task_kind == "binary" else 3)
        if not pyramid:
            head = build_head(config_class(**required), in_channels=16, num_outputs=5)
            assert head(torch.randn(3, 16, 4, 4)).shape == (3, 5)
