"""A timm model that cannot be cut module by module runs whole: timm's ``features_only`` extractor, then pass-throughs.

One tiny model per route timm reads its maps by: ``forward_intermediates``
(``FeatureGetterNet``: a relative-position ViT, an EVA whose rotary embedding
follows each image), hooks in one forward pass (``FeatureHookNet``: PiT), taps
out of order (HRNet's own feature class) and stages that hand on lists
(SelecSLS). For each, the oracle is timm's own extractor on the same weights:
what every reader of segment ``k`` gets is its map ``k``. A spec with a
pyramid on it trains a step; a branch inside it, or a freeze or an
``lr_scale`` on one of its segments, is a located error; a weights file loads
through timm's own ``pretrained`` path, every key of it.
"""

from __future__ import annotations

import pytest
import timm
import torch
from timm.models import register_model
from timm.models.eva import _create_eva

from mtdsl.compiler import compile_text
from mtdsl.errors import BackboneError, SpecValueError, WeightsError
from mtdsl.graph.backbones import backbone_info, read_backbone
from mtdsl.nn.backbone import WholeExtractor, WholeTap


@register_model
def mtdsl_tiny_eva_dynamic(pretrained: bool = False, **kwargs) -> torch.nn.Module:
    """An EVA whose rotary embedding follows each image's patch grid (``dynamic_img_size``): no segment can cut it."""
    args = dict(img_size=64, patch_size=16, embed_dim=32, depth=3, num_heads=2, use_rot_pos_emb=True,
                dynamic_img_size=True)
    return _create_eva("mtdsl_tiny_eva_dynamic", pretrained=pretrained, **dict(args, **kwargs))


@register_model
def mtdsl_no_features(pretrained: bool = False, **kwargs) -> torch.nn.Module:
    """A model timm cannot build with ``features_only`` (its builder refuses it): the one kind still refused."""
    if kwargs.pop("features_only", False):
        raise RuntimeError("features_only not implemented for mtdsl_no_features")
    return timm.create_model("test_resnet", **kwargs)


#: One model per way timm reads maps that mtdsl cannot cut, and the side it runs at (its own where fixed).
WHOLE = {
    "forward_intermediates": ("test_vit_relpos", 160),
    "forward_intermediates, rotary per image": ("mtdsl_tiny_eva_dynamic", 64),
    "hooks": ("pit_ti_224", 224),
    "taps out of order": ("hrnet_w18_small", 64),
    "list outputs": ("selecsls42", 64),
}


def _spec(model_name: str, side: int, tasks: str, backbone: str = "") -> str:
    return (f'model whole\ninput 3x{side}x{side}\nbackbone trunk = timm("{model_name}"{backbone})\n'
            f"dataset d = synthetic()\n{tasks}")


def _timm_extractor(model_name: str, compiled_model: torch.nn.Module) -> torch.nn.Module:
    """timm's own extractor with the compiled model's weights: the same class, so the same keys."""
    extractor = timm.create_model(model_name, features_only=True).eval()
    first = next(iter(compiled_model.backbone.trunk.values()))
    extractor.load_state_dict(first.extractor.state_dict())
    return extractor


@pytest.mark.parametrize("model_name, side", WHOLE.values(), ids=WHOLE.keys())
def test_every_reader_of_a_segment_gets_timms_map_for_it(model_name, side):
    info = read_backbone(model_name)
    assert info.whole and not info.refusal
    extractor_parameters = sum(p.numel() for p in timm.create_model(model_name, features_only=True).parameters())
    assert [s.parameters for s in info.segments] == [extractor_parameters] + [0] * (len(info.segments) - 1)
    tasks = "".join(f"task t{k}: classify(d) {{ classes = 2; tap = trunk.{s.name} }}\n"
                    for k, s in enumerate(info.segments))
    torch.manual_seed(0)
    model = compile_text(_spec(model_name, side, tasks)).model().eval()
    seen: dict[str, torch.Tensor] = {}
    for k in range(len(info.segments)):
        model.heads[f"t{k}"].register_forward_pre_hook(lambda _m, args, k=k: seen.__setitem__(k, args[0]))
    segments = list(model.backbone.trunk.values())
    assert isinstance(segments[0], WholeExtractor) and all(isinstance(s, WholeTap) for s in segments[1:])
    assert all(not list(s.parameters()) for s in segments[1:])
    images = torch.randn(2, 3, side, side)
    with torch.no_grad():
        model(images)
        expected = _timm_extractor(model_name, model)(images)
    for k, (segment, want) in enumerate(zip(info.segments, expected, strict=True)):
        assert seen[k].shape[1] == segment.channels
        torch.testing.assert_close(seen[k], want, rtol=0, atol=0)


@pytest.mark.parametrize("model_name, side", WHOLE.values(), ids=WHOLE.keys())
def test_a_pyramid_on_a_whole_backbone_trains_and_its_generated_code_agrees(model_name, side):
    from mtdsl.codegen.model_source import generate_model_source

    info = backbone_info(model_name)
    min_level = max(3, min(s.reduction for s in info.stages).bit_length() - 1)
    tasks = (f"neck pyramid = fpn(trunk, channels = 16, min_level = {min_level}, max_level = {min_level + 1})\n"
             "task boxes: detect(d) { classes = 2; tap = pyramid }\n"
             "task road: segment(d) { classes = 2; tap = pyramid }\n"
             f"task kind: classify(d) {{ classes = 3; tap = trunk.{info.names[-1]} }}\n")
    compiled = compile_text(_spec(model_name, side, tasks))
    torch.manual_seed(0)
    model = compiled.model().train()
    outputs = model(torch.randn(2, 3, side, side))
    loss = outputs["boxes"][0].sum() + outputs["boxes"][1].sum() + outputs["road"].sum() + outputs["kind"].sum()
    loss.backward()
    grads = [p.grad for p in model.backbone.trunk[info.names[0]].parameters()]  # PiT's hooks leave its last norm out
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in grads) > len(grads) // 2
    source = generate_model_source(compiled.graph)
    assert ".as_map(" in source
    namespace: dict = {}
    exec(compile(source, "model.py", "exec"), namespace)
    generated = namespace["Model"](load_pretrained=False).eval()
    generated.load_state_dict(model.state_dict())
    images = torch.randn(1, 3, side, side)
    with torch.no_grad():
        torch.testing.assert_close(generated(images)["road"], model.eval()(images)["road"], rtol=0, atol=0)


@pytest.mark.parametrize("branch, tap", [("trunk.stage2", ""), ("a.stage2", ""), ("trunk.stage1", "trunk.stage2")])
def test_a_branch_inside_a_whole_backbone_is_a_located_error(branch, tap):
    tapped = f"; tap = {tap}" if tap else ""
    text = _spec("test_vit_relpos", 160, "task a: classify(d) { classes = 2 }\n"
                 f"task b: classify(d) {{ classes = 2; branch = {branch}{tapped} }}\n")
    with pytest.raises(SpecValueError, match="runs whole") as caught:
        compile_text(text, "whole.mtl")
    assert (caught.value.span.line, caught.value.span.column) == (6, 45)
    assert "second backbone" in caught.value.hint and "mtdsl backbones" in caught.value.hint


def test_a_branch_that_copies_nothing_is_no_error():
    text = _spec("test_vit_relpos", 160, "task a: classify(d) { classes = 2 }\n"
                 "task b: classify(d) { classes = 2; branch = trunk.stage3 }\n"
                 "task c: classify(d) { classes = 2; branch = trunk.stage2; tap = trunk.stage2 }\n")
    graph = compile_text(text).graph
    assert not [node for node, data in graph.nodes(data=True) if data["kind"] == "branch"]


@pytest.mark.parametrize("train, line, column, target", [
    ("train { phase warm { epochs = 1; freeze = [heads, trunk.stage1] } }", 6, 51, "trunk.stage1"),
    ("train { lr_scale = scale(trunk.stage3 = 0.1) }", 6, 26, "trunk.stage3"),
])
def test_freezing_or_scaling_one_segment_of_a_whole_backbone_is_a_located_error(train, line, column, target):
    text = _spec("test_vit_relpos", 160, f"task a: classify(d) {{ classes = 2 }}\n{train}\n")
    with pytest.raises(SpecValueError, match=f"'{target}', one segment of backbone 'trunk'") as caught:
        compile_text(text, "whole.mtl")
    assert (caught.value.span.line, caught.value.span.column) == (line, column)
    assert "write trunk instead" in caught.value.hint
    whole = text.replace(target, "trunk")
    assert compile_text(whole).graph is not None  # the whole backbone is fine


def test_only_a_model_timm_cannot_build_with_features_only_is_refused():
    info = read_backbone("mtdsl_no_features")
    assert not info.segments and "timm cannot build it with features_only=True" in info.refusal
    with pytest.raises(BackboneError, match="features_only not implemented") as caught:
        compile_text(_spec("mtdsl_no_features", 64, "task a: classify(d) { classes = 2 }\n"), "refused.mtl")
    assert caught.value.span.line == 3


@pytest.mark.parametrize("model_name, side", [WHOLE["forward_intermediates"], WHOLE["taps out of order"]])
def test_a_weights_file_loads_through_timm_into_the_extractor_every_key(model_name, side, tmp_path):
    torch.manual_seed(1)
    source = timm.create_model(model_name, num_classes=5)  # with a classifier, which is dropped
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    text = _spec(model_name, side, "task a: classify(d) { classes = 2; tap = trunk.stage2 }\n",
                 f', pretrained = "{path}"')
    model = compile_text(text).model().eval()
    timms = timm.create_model(model_name, features_only=True, pretrained=True,
                              pretrained_cfg_overlay={"file": str(path)}).eval()
    first = next(iter(model.backbone.trunk.values())).extractor
    ours, theirs = first.state_dict(), timms.state_dict()
    assert list(ours) == list(theirs) and all(torch.equal(ours[key], theirs[key]) for key in ours)
    random = timm.create_model(model_name, features_only=True).state_dict()
    assert any(not torch.equal(ours[key], random[key]) for key in ours)
    some_key = next(key for key in source.state_dict() if key.endswith("weight"))
    torch.save({k: v for k, v in source.state_dict().items() if k != some_key}, path)
    with pytest.raises(WeightsError, match=f"1 missing keys \\({some_key}\\)"):
        compile_text(text).model()


def test_imagenet_weights_of_a_whole_backbone_come_through_timms_hub_offline(offline_hub):
    """timm's own ``features_only=True, pretrained=True``: huggingface_hub's cache serves them, keys are timm's."""
    import json

    from conftest import put_in_hub_cache
    from safetensors.torch import save

    from mtdsl.nn.pretrained import pretrained_segments

    name = "hrnet_w18_small.ms_in1k"
    torch.manual_seed(2)
    source = timm.create_model("hrnet_w18_small", num_classes=1000)
    pretrained_cfg = timm.models.get_pretrained_cfg(name).to_dict()
    config = json.dumps({"architecture": "hrnet_w18_small", "num_classes": 1000, "pretrained_cfg": pretrained_cfg})
    put_in_hub_cache(offline_hub, f"timm/{name}",
                     {"model.safetensors": save(source.state_dict()), "config.json": config.encode()})
    segments = pretrained_segments(name, "imagenet")
    assert isinstance(segments["stem"], WholeExtractor)
    ours = segments["stem"].extractor.state_dict()
    theirs = timm.create_model(name, features_only=True, pretrained=True).state_dict()
    assert list(ours) == list(theirs) and all(torch.equal(ours[key], theirs[key]) for key in ours)
    assert torch.equal(ours["conv1.weight"], source.conv1.weight)


def test_an_extractor_with_channels_last_maps_is_read_as_nhwc_and_handed_on_as_nchw():
    """No timm model runs whole with NHWC maps today; a feature wrapper that gives them is still read right."""
    from mtdsl.graph.backbones import _whole_layout

    class ChannelsLast(torch.nn.Module):
        def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
            return [images[:, :, ::4, ::4].permute(0, 2, 3, 1), images[:, :2, ::8, ::8].permute(0, 2, 3, 1)]

    assert _whole_layout(ChannelsLast(), (3, 32, 32), [3, 2]) == ("NHWC", "")
    assert "not feature_info's [4, 2]" in _whole_layout(ChannelsLast(), (3, 32, 32), [4, 2])[1]
    images = torch.randn(1, 3, 32, 32)
    maps = WholeExtractor(ChannelsLast(), channels_last=True)(images)
    assert [tuple(m.shape) for m in maps] == [(1, 3, 8, 8), (1, 2, 4, 4)]
    assert torch.equal(WholeTap(1).as_map(maps, (32, 32)), images[:, :2, ::8, ::8])


def test_a_weights_file_for_a_hub_names_whole_backbone_is_the_file_not_the_hub(offline_hub, tmp_path):
    """A hub name's model with ``pretrained = "PATH"``: timm loads the file, not the hub's (absent) weights."""
    import json

    from conftest import put_in_hub_cache

    from mtdsl.nn.pretrained import pretrained_segments

    pretrained_cfg = timm.models.get_pretrained_cfg("hrnet_w18_small.ms_in1k").to_dict()
    config = json.dumps({"architecture": "hrnet_w18_small", "num_classes": 1000, "pretrained_cfg": pretrained_cfg})
    put_in_hub_cache(offline_hub, "timm/hrnet_w18_small.ms_in1k", {"config.json": config.encode()})
    torch.manual_seed(3)
    source = timm.create_model("hrnet_w18_small", num_classes=0)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    segments = pretrained_segments("hf-hub:timm/hrnet_w18_small.ms_in1k", str(path))
    assert torch.equal(segments["stem"].extractor.conv1.weight, source.conv1.weight)
