"""Any timm backbone whose ``features_only`` extractor runs its modules in order is cut into segments.

One tiny model per family (timm's own ``test_*`` models where they exist,
else the family's smallest), random weights, 64×64 images (the model's own
size where timm fixes it), CPU. For each, the oracle is timm itself: every
segment's output is the feature map timm's forward pass produces at that tap
(read with forward hooks on ``forward_features``), in ``NCHW`` whatever the
model's layout, with the channels and stride the metadata promised; a
two-task spec that branches after ``stage2`` compiles and runs. Models timm
reads another way (``forward_intermediates``, hooks) are refused with the
reason, by every name.
"""

from __future__ import annotations

import pytest
import timm
import torch
from timm.models import register_model
from timm.models.vision_transformer import _create_vision_transformer

from mtdsl.compiler import compile_text
from mtdsl.errors import BackboneError
from mtdsl.graph.backbones import PRE_LOGITS, backbone_info, data_config, read_backbone
from mtdsl.nn.backbone import create_timm_model, segments_of

#: One small model per timm family that can be cut, named by its timm module.
FAMILIES = {
    "resnet": "test_resnet",
    "efficientnet": "test_efficientnet",
    "mobilenetv3": "mobilenetv3_small_050",
    "mobilenetv4 (mobilenetv3)": "mobilenetv4_conv_small",
    "convnext": "test_convnext",
    "byobnet": "test_byobnet",
    "maxxvit": "test_maxvit",
    "nfnet": "test_nfnet",
    "mambaout (NHWC)": "test_mambaout",
    "regnet": "regnetx_002",
    "hgnet": "hgnetv2_b0",
    "fastvit": "fastvit_t8",
    "efficientvit_mit": "efficientvit_b0",
    "metaformer": "caformer_s18",
    "lowformer (head layers after the last stage: no pre_logits)": "lowformer_b0",
}
#: Models timm reads with forward_intermediates or hooks, and a word of the reason.
REFUSED = {"test_vit": "class/register token", "test_vit_relpos": "forward_intermediates", "xception41": "hooks",
           "selecsls42": "stage1 outputs a list, not one map"}


@register_model
def mtdsl_tiny_vit_gap(pretrained: bool = False, **kwargs) -> torch.nn.Module:
    """A ViT without class or register tokens (like SigLIP's and the *_gap ones), small enough for a CPU test."""
    args = dict(img_size=64, patch_size=16, embed_dim=32, depth=3, num_heads=2, class_token=False, global_pool="avg")
    return _create_vision_transformer("mtdsl_tiny_vit_gap", pretrained=pretrained, **dict(args, **kwargs))


@register_model
def mtdsl_tiny_vit_no_pos(pretrained: bool = False, **kwargs) -> torch.nn.Module:
    """The same without a position embedding (``pos_embed`` is None, as in ``vitamin_*``)."""
    return mtdsl_tiny_vit_gap(pretrained=pretrained, **dict(dict(pos_embed="none"), **kwargs))


#: Vision transformers cut between blocks: the tiny ones above, and the smallest real SigLIP and *_gap ones.
TOKEN_MODELS = ["mtdsl_tiny_vit_gap", "mtdsl_tiny_vit_no_pos", "vit_base_patch16_siglip_gap_224",
                "vit_medium_patch16_gap_256"]


def _side(model_name: str) -> int:
    data = data_config(model_name)
    return data.input_size[1] if data.fixed_input_size else 64


def _timm_maps(model: torch.nn.Module, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """timm's own feature maps (NCHW) at each feature_info tap, and ``forward_features``' output."""
    maps: list[torch.Tensor] = []
    hooks = [
        model.get_submodule(info["module"]).register_forward_hook(lambda _m, _i, out: maps.append(out))
        for info in model.feature_info
    ]
    try:
        features = model.forward_features(images)
    finally:
        for hook in hooks:
            hook.remove()
    if str(getattr(model, "output_fmt", "NCHW")).endswith("NHWC"):
        maps = [m.permute(0, 3, 1, 2) for m in maps]
        features = features.permute(0, 3, 1, 2)
    return maps, features


@pytest.mark.parametrize("model_name", FAMILIES.values(), ids=FAMILIES.keys())
def test_every_segment_outputs_timms_feature_map(model_name):
    torch.manual_seed(0)
    model = create_timm_model(model_name).eval()
    side = _side(model_name)
    images = torch.randn(2, 3, side, side)
    info = backbone_info(model_name)
    assert not info.refusal and info.segments
    with torch.no_grad():
        expected, features = _timm_maps(model, images)
        x, outputs = images, {}
        for name, segment in segments_of(model, info.names).items():
            x = outputs[name] = segment(x)
    for stage, want in zip(info.stages, expected, strict=True):
        got = outputs[stage.name]
        assert got.shape == (2, stage.channels, *want.shape[-2:]), stage.name
        assert -(-side // stage.reduction) == got.shape[-1], stage.name  # the stride rounds sides up
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    if PRE_LOGITS in outputs and not info.segment(PRE_LOGITS).pooled:
        torch.testing.assert_close(outputs[PRE_LOGITS], features, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model_name", FAMILIES.values(), ids=FAMILIES.keys())
def test_a_branching_spec_compiles_and_runs(model_name):
    side = _side(model_name)
    compiled = compile_text(f"""
model families
input 3x{side}x{side}
backbone trunk = timm("{model_name}")
dataset d = synthetic()
task whole: classify(d) {{ classes = 3 }}
task own: classify(d) {{ classes = 2; branch = trunk.stage2 }}
""")
    outputs = compiled.model().eval()(torch.randn(2, 3, side, side))
    assert outputs["whole"].shape == (2, 3) and outputs["own"].shape == (2, 2)
    assert torch.isfinite(outputs["own"]).all()


def test_every_timm_test_model_is_cut_or_refused_with_a_reason():
    for model_name in timm.list_models("test_*"):
        info = read_backbone(model_name)
        assert bool(info.segments) != bool(info.refusal), model_name
        if info.segments:
            assert [s.reduction for s in info.stages] == sorted(s.reduction for s in info.stages), model_name


@pytest.mark.parametrize("model_name, reason", REFUSED.items())
def test_models_timm_reads_another_way_are_refused_with_the_reason(model_name, reason):
    text = f'model m\ninput 3x160x160\nbackbone trunk = timm("{model_name}")\ndataset d = synthetic()\n' \
           "task t: classify(d) { classes = 2 }\n"
    with pytest.raises(BackboneError, match=reason) as caught:
        compile_text(text, "refused.mtl")
    assert caught.value.span is not None and caught.value.span.line == 3


def test_a_pretrained_tag_is_its_architecture_with_its_own_data_config():
    tagged, bare = backbone_info("resnet18.a1_in1k"), backbone_info("resnet18")
    assert tagged.family == bare.family == "resnet" and tagged.segments == bare.segments
    config = timm.models.get_pretrained_cfg("resnet18.a1_in1k")
    assert data_config("resnet18.a1_in1k").crop_pct == config.crop_pct
    assert data_config("resnet18.a1_in1k").input_size == tuple(config.input_size)


@pytest.mark.parametrize("name, message", [
    ("resnet18.no_such_tag", "no pretrained tag 'no_such_tag' for 'resnet18'"),
    ("resnet_18", "unknown timm model 'resnet_18'"),
])
def test_unknown_names_and_tags_are_located_with_the_valid_ones(name, message):
    text = f'model m\nbackbone trunk = timm("{name}")\ndataset d = synthetic()\ntask t: classify(d) {{ classes = 2 }}\n'
    with pytest.raises(BackboneError, match=message) as caught:
        compile_text(text, "names.mtl")
    assert caught.value.span.line == 2 and caught.value.hint


def test_a_fixed_size_model_given_another_size_is_a_located_error():
    text = 'model m\ninput 3x64x64\nbackbone trunk = timm("test_maxvit")\ndataset d = synthetic()\n' \
           "task t: classify(d) { classes = 2 }\n"
    with pytest.raises(BackboneError, match="takes 3x160x160 images only") as caught:
        compile_text(text, "fixed.mtl")
    assert caught.value.span.line == 2


# ------------------------------------------------------------------ vision transformers without prefix tokens


#: Modules of a ViT that belong to timm's classifier, which heads replace.
VIT_HEAD = ("fc_norm", "attn_pool", "head")


@pytest.mark.parametrize("model_name", TOKEN_MODELS)
def test_a_vision_transformer_is_read_as_tokens_cut_between_blocks(model_name):
    with torch.device("meta"):
        model = timm.create_model(model_name, num_classes=0)
    info = read_backbone(model_name)
    assert info.layout == "NLC" and not info.refusal and info.data.fixed_input_size
    assert [s.name for s in info.stages] == [f"stage{i}" for i in range(1, len(model.blocks) + 1)]
    assert {s.reduction for s in info.stages} == {model.patch_embed.patch_size[0]}
    body = sum(p.numel() for name, p in model.named_parameters() if not name.startswith(VIT_HEAD))
    assert sum(s.parameters for s in info.segments) == body


@pytest.mark.parametrize("model_name", TOKEN_MODELS)
def test_a_vision_transformer_cut_outputs_timms_intermediates(model_name):
    """The real architectures, made shallow and narrow (their structure, not their size, is under test)."""
    torch.manual_seed(0)
    model = create_timm_model(model_name, depth=3, embed_dim=32, num_heads=2, img_size=64).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model.forward_intermediates(images, intermediates_only=True)
        features = model.forward_features(images)
        x, outputs = images, []
        segments = segments_of(model)
        for segment in segments.values():
            x = segment(x)
            outputs.append(x)
    has_norm = any(True for _ in model.norm.parameters())  # a *_gap ViT normalises after pooling, in the head
    assert list(segments) == ["stage1", "stage2", "stage3"] + [PRE_LOGITS] * has_norm
    for got, want in zip(outputs, expected, strict=False):
        assert got.shape == want.shape == (2, 32, 4, 4)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(outputs[-1].flatten(2).transpose(1, 2), features, rtol=1e-4, atol=1e-5)


def test_a_vision_transformer_branches_trains_and_feeds_a_neck(monkeypatch, tmp_path):
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path))  # the tiny ViT is registered in this process only
    compiled = compile_text("""
model vit
input 3x64x64
backbone trunk = timm("mtdsl_tiny_vit_gap")
neck pyramid = fpn(trunk, channels = 16, min_level = 4, max_level = 5)
dataset d = synthetic()
task kind: classify(d) { classes = 3 }
task own: classify(d) { classes = 2; branch = trunk.stage2 }
task boxes: detect(d) { classes = 2; tap = pyramid }
""")
    model = compiled.model()
    images = torch.randn(2, 3, 64, 64)
    outputs = model(images)
    assert outputs["kind"].shape == (2, 3) and outputs["own"].shape == (2, 2)
    (outputs["kind"].sum() + outputs["own"].sum()).backward()
    grads = [p.grad for p in model.backbone.trunk.stage1.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    copies = {data["segment"] for _, data in compiled.graph.nodes(data=True) if data.get("owner") == "own"}
    names = backbone_info("mtdsl_tiny_vit_gap").names
    assert copies == set(names[names.index("stage3"):])
    assert outputs["boxes"][0].shape[0] == 2


# ------------------------------------------------------------------ mtdsl backbones


def test_the_backbones_command_lists_segments_and_with_all_the_refusals(capsys):
    from mtdsl.cli import main

    assert main(["backbones", "test_*"]) == 0
    listed = capsys.readouterr()
    lines = {line.split()[0]: line for line in listed.out.splitlines()}
    info = backbone_info("test_convnext")
    assert lines["test_convnext"].endswith("  ".join(f"{s.name} {s.channels}/{s.reduction}" for s in info.segments))
    assert "test_vit" not in lines and "refused (--all lists them" in listed.err
    assert "(NHWC inside)" in lines["test_mambaout"]
    assert main(["backbones", "test_vit*", "--all"]) == 0
    refused = capsys.readouterr().out.splitlines()
    assert len(refused) == len(timm.list_models("test_vit*"))
    assert all(f"refused: {read_backbone(line.split()[0]).refusal}" in line for line in refused)


def test_the_backbones_command_lists_tags_and_json(capsys):
    import json

    from mtdsl.cli import main

    assert main(["backbones", "resnet18.a?_in1k", "--json", "--quiet"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in records] == ["resnet18.a1_in1k", "resnet18.a2_in1k", "resnet18.a3_in1k"]
    assert all(r["family"] == "resnet" and len(r["segments"]) == 5 and r["data"]["crop_pct"] for r in records)


# ------------------------------------------------------------------ hub names


def _hub_spec(name: str) -> str:
    return f'model m\ninput 3x64x64\nbackbone trunk = timm("{name}")\ndataset d = synthetic()\n' \
           "task t: classify(d) { classes = 2; branch = trunk.stage3 }\n"


def test_a_hub_name_not_in_the_cache_offline_is_a_located_error(offline_hub, monkeypatch, tmp_path):
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path / "mtdsl"))
    with pytest.raises(BackboneError, match="cannot read the configuration of hf-hub:timm/nowhere") as caught:
        compile_text(_hub_spec("hf-hub:timm/nowhere"), "hub.mtl")
    assert caught.value.span.line == 3 and "HF_HUB_OFFLINE" in caught.value.hint


def test_a_hub_name_in_the_cache_compiles_offline_as_its_architecture(offline_hub, monkeypatch, tmp_path):
    import json

    from conftest import put_in_hub_cache

    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path / "mtdsl"))
    pretrained_cfg = timm.models.get_pretrained_cfg("test_resnet.r160_in1k").to_dict()
    config = {"architecture": "test_resnet", "num_classes": 1000, "pretrained_cfg": pretrained_cfg}
    put_in_hub_cache(offline_hub, "timm/test_resnet.r160_in1k", {"config.json": json.dumps(config).encode()})
    name = "hf-hub:timm/test_resnet.r160_in1k"
    compiled = compile_text(_hub_spec(name))
    assert backbone_info(name).segments == backbone_info("test_resnet").segments
    assert backbone_info(name).data.mean == (0.5, 0.5, 0.5)  # the hub config's, not ImageNet's
    assert compiled.model()(torch.randn(1, 3, 64, 64))["t"].shape == (1, 2)


# ------------------------------------------------------------------ docs/backbones.md


def _doc_blocks() -> list[tuple[str, str]]:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "backbones.md").read_text(encoding="utf-8")
    fence = re.compile(r"^```([A-Za-z0-9_-]*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
    return [(m.group(1), m.group(2)) for m in fence.finditer(text)]


def test_the_backbones_page_examples_compile_and_its_error_is_shown_as_printed():
    from mtdsl.graph.build import build_graph
    from mtdsl.spec.load import load_text

    blocks = _doc_blocks()
    specs = [body for tag, body in blocks if tag == "mtl"]
    assert specs
    for body in specs:
        spec = load_text(body, "docs/backbones.md")
        assert set(build_graph(spec).graph["tasks"]) == set(spec.model.tasks)
    errors = [(body, blocks[i + 1][1]) for i, (tag, body) in enumerate(blocks) if tag == "mtl-error"]
    assert errors
    for body, shown in errors:
        with pytest.raises(BackboneError) as caught:
            build_graph(load_text(body, "s.mtl"))
        assert caught.value.render() == shown.rstrip("\n")


def test_the_backbones_page_listings_are_what_the_command_prints(capsys):
    from mtdsl.cli import main

    listings = [body for tag, body in _doc_blocks() if tag == "sh" and body.startswith("$ mtdsl backbones")]
    assert listings
    for listing in listings:
        for command in listing.split("$ ")[1:]:
            first, _, shown = command.partition("\n")
            argv = [word.strip("'") for word in first.split()[1:]]
            assert main(argv) == 0
            printed = capsys.readouterr()
            assert printed.out + printed.err.splitlines()[-1] + "\n" == shown, first
