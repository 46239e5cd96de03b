"""Any timm backbone whose ``features_only`` extractor runs its modules in order is cut into segments.

One tiny model per family (timm's own ``test_*`` models where they exist,
else the family's smallest), random weights, 64×64 images (the model's own
size where timm fixes it), CPU. For each, the oracle is timm itself: every
segment's output is the feature map timm's forward pass produces at that tap
(read with forward hooks on ``forward_features``), in ``NCHW`` whatever the
model's layout, with the channels and stride the metadata promised; a
two-task spec that branches after ``stage2`` compiles and runs. timm's
vision transformers, class and register tokens included, are cut between
blocks: every map a reader sees is timm's ``forward_intermediates``. Other
models timm reads another way (``forward_intermediates``, hooks) run whole
(``tests/test_whole_backbones.py``).
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import timm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from timm.models import register_model
from timm.models.eva import _create_eva
from timm.models.vision_transformer import _create_vision_transformer

from mtdsl.compiler import compile_text
from mtdsl.errors import BackboneError, MtdslError, SpecValueError
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
#: Models timm reads with forward_intermediates or hooks, or whose stages or rotary embeddings cannot be cut: they
#: run whole.
RUN_WHOLE = ["test_vit_relpos", "xception41", "selecsls42", "vit_small_patch16_rope_mixed_224",
             "vit_small_patch16_dinov3"]


@register_model
def mtdsl_tiny_vit_gap(pretrained: bool = False, **kwargs) -> torch.nn.Module:
    """A ViT without class or register tokens (like SigLIP's and the *_gap ones), small enough for a CPU test."""
    args = dict(img_size=64, patch_size=16, embed_dim=32, depth=3, num_heads=2, class_token=False, global_pool="avg")
    return _create_vision_transformer("mtdsl_tiny_vit_gap", pretrained=pretrained, **dict(args, **kwargs))


@register_model
def mtdsl_tiny_vit_no_pos(pretrained: bool = False, **kwargs) -> torch.nn.Module:
    """The same without a position embedding (``pos_embed`` is None, as in ``vitamin_*``)."""
    return mtdsl_tiny_vit_gap(pretrained=pretrained, **dict(dict(pos_embed="none"), **kwargs))


@register_model
def mtdsl_tiny_vit_registers(pretrained: bool = False, **kwargs) -> torch.nn.Module:
    """A ViT with a class token and two register tokens, each segment's blocks attending to them."""
    args = dict(img_size=64, patch_size=16, embed_dim=32, depth=3, num_heads=2, reg_tokens=2)
    return _create_vision_transformer("mtdsl_tiny_vit_registers", pretrained=pretrained, **dict(args, **kwargs))


@register_model
def mtdsl_tiny_eva(pretrained: bool = False, **kwargs) -> torch.nn.Module:
    """An EVA with a class token, a register token and rotary position embeddings (every segment computes them)."""
    args = dict(img_size=64, patch_size=16, embed_dim=32, depth=3, num_heads=2, num_reg_tokens=1,
                use_rot_pos_emb=True)
    return _create_eva("mtdsl_tiny_eva", pretrained=pretrained, **dict(args, **kwargs))


#: Vision transformers cut between blocks: the tiny ones above, timm's test ViTs (class or register tokens, most
#: of them with dynamic_img_size) and real ones: SigLIP and *_gap (no prefix tokens), ViT-B and DeiT-III (a class
#: token, position embeddings without one), DINOv2 with registers (1 + 4 prefix tokens, 14 px patches), a hybrid
#: ResNet-ViT; timm's Eva (rotary position embeddings: a rotary ViT, EVA-02) and Beit (relative position biases).
TOKEN_MODELS = ["mtdsl_tiny_vit_gap", "mtdsl_tiny_vit_no_pos", "mtdsl_tiny_vit_registers", "test_vit", "test_vit2",
                "test_vit3", "test_vit4", "vit_base_patch16_siglip_gap_224", "vit_medium_patch16_gap_256",
                "vit_base_patch16_224", "deit3_small_patch16_224", "vit_small_patch14_reg4_dinov2",
                "vit_tiny_r_s16_p8_224", "vit_base_patch16_rope_224", "eva02_tiny_patch14_224",
                "beit_base_patch16_224", "mtdsl_tiny_eva"]


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


@pytest.mark.parametrize("model_name", RUN_WHOLE)
def test_models_timm_reads_another_way_run_whole_at_timms_taps(model_name):
    info = read_backbone(model_name)
    assert info.whole and not info.refusal and info.segments[0].parameters and info.layout == "NCHW"
    with torch.device("meta"):
        extractor = timm.create_model(model_name, features_only=True)
    assert [s.channels for s in info.segments] == extractor.feature_info.channels()
    assert [s.reduction for s in info.segments] == extractor.feature_info.reduction()


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
    assert info.layout == "NLC" and not info.refusal
    resampled = getattr(model, "dynamic_img_size", False)  # timm resamples the position embedding per image
    assert info.data.fixed_input_size == (not resampled)
    assert [s.name for s in info.stages] == [f"stage{i}" for i in range(1, len(model.blocks) + 1)]
    assert {s.reduction for s in info.stages} == {model.patch_embed.feat_ratio()}  # a hybrid's: its CNN's × patch
    body = sum(p.numel() for name, p in model.named_parameters() if not name.startswith(VIT_HEAD))
    assert sum(s.parameters for s in info.segments) == body


def _tiny(model_name: str) -> torch.nn.Module:
    """The architecture made shallow and narrow, on a 4×4 patch grid (its structure, not its size, is under test)."""
    with torch.device("meta"):
        stride = timm.create_model(model_name).feature_info[0]["reduction"]  # a hybrid's is its CNN's times its patch
    return create_timm_model(model_name, depth=3, embed_dim=32, num_heads=2, img_size=4 * stride).eval()


@pytest.mark.parametrize("model_name", TOKEN_MODELS)
def test_a_vision_transformer_cut_outputs_timms_intermediates(model_name):
    torch.manual_seed(0)
    model = _tiny(model_name)
    side = model.patch_embed.img_size[0]
    images = torch.randn(2, 3, side, side)
    with torch.no_grad():
        expected = model.forward_intermediates(images, intermediates_only=True)
        features = model.forward_features(images)
        x, tokens, maps = images, [], []
        segments = segments_of(model)
        for segment in segments.values():
            x = segment(x)
            tokens.append(x)
            maps.append(segment.as_map(x, images.shape[-2:]))
    has_norm = any(True for _ in model.norm.parameters())  # a *_gap ViT normalises after pooling, in the head
    assert list(segments) == ["stage1", "stage2", "stage3"] + [PRE_LOGITS] * has_norm
    assert all(t.shape == (2, model.num_prefix_tokens + 16, 32) for t in tokens)  # prefix tokens are handed on
    for got, want in zip(maps, expected, strict=False):
        assert got.shape == want.shape == (2, 32, 4, 4)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(tokens[-1], features, rtol=1e-4, atol=1e-5)
    if has_norm:  # pre_logits is timm's forward_intermediates(norm=True) of the last block
        last = model.forward_intermediates(images, indices=1, norm=True, intermediates_only=True)[-1]
        torch.testing.assert_close(maps[-1], last, rtol=1e-4, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 300), width=st.integers(1, 300), patch=st.tuples(st.integers(1, 32), st.integers(1, 32)),
       padded=st.booleans(), prefix=st.integers(0, 5))
def test_a_token_segments_map_is_timms_on_timms_patch_grid(height, width, patch, padded, prefix):
    """The grid is timm's ``PatchEmbed.dynamic_feat_size``; the map is ``forward_intermediates``' reshape."""
    from types import SimpleNamespace

    from timm.layers import PatchEmbed

    from mtdsl.nn.backbone import TokenSegment

    segment = TokenSegment(OrderedDict(), prefix, patch, padded=padded)
    grid = PatchEmbed.dynamic_feat_size(SimpleNamespace(patch_size=patch, dynamic_img_pad=padded), (height, width))
    assert segment.grid((height, width)) == grid
    if grid[0] * grid[1] and grid[0] * grid[1] <= 4096:
        tokens = torch.randn(2, prefix + grid[0] * grid[1], 3)
        timms = tokens[:, prefix:].reshape(2, *grid, 3).permute(0, 3, 1, 2)
        assert torch.equal(segment.as_map(tokens, (height, width)), timms)


def test_a_vision_transformer_that_drops_patches_is_refused():
    from mtdsl.graph.backbones import _token_refusal

    with torch.device("meta"):
        assert _token_refusal(timm.create_model("test_vit3")) == ""
        assert "drops patches" in _token_refusal(timm.create_model("test_vit3", patch_drop_rate=0.5))


@pytest.mark.parametrize("model_name", ["test_vit", "mtdsl_tiny_vit_registers", "vit_small_patch14_reg4_dinov2"])
def test_a_vision_transformers_segments_hold_timms_weights_once_each(model_name):
    """Every weight of timm's model but its head, once, the same tensors (pretrained weights load through timm)."""
    model = _tiny(model_name)
    segments = segments_of(model)
    body = {name: p for name, p in model.named_parameters() if not name.startswith(VIT_HEAD)}
    held = list(segments.parameters())
    assert len(held) == len(body) and {id(p) for p in held} == {id(p) for p in body.values()}
    timm_keys = {key for key in model.state_dict() if not key.startswith(VIT_HEAD)}
    assert sorted(_timm_key(key) for key in segments.state_dict()) == sorted(timm_keys)


def _timm_key(key: str) -> str:
    """A segment's state-dict key as timm's: ``stage1.embed.cls_token`` → ``cls_token``, ``stage2.blocks_1.…`` →
    ``blocks.1.…``, ``pre_logits.norm.…`` → ``norm.…``."""
    part, _, rest = key.split(".", 1)[1].removeprefix("embed.").partition(".")
    if part.startswith("blocks_"):
        return f"blocks.{part.removeprefix('blocks_')}.{rest}"
    return f"{part}.{rest}".rstrip(".")


def test_a_vision_transformer_with_class_and_register_tokens_reads_from_a_weights_file(monkeypatch, tmp_path):
    from mtdsl.nn.pretrained import pretrained_segments

    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path))
    torch.manual_seed(1)
    model = create_timm_model("mtdsl_tiny_vit_registers").eval()
    torch.save(model.state_dict(), tmp_path / "vit.pth")
    segments = pretrained_segments("mtdsl_tiny_vit_registers", str(tmp_path / "vit.pth")).eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        x = images
        for segment in segments.values():
            x = segment(x)
        torch.testing.assert_close(x, model.forward_features(images))


@pytest.mark.parametrize("model_name", ["mtdsl_tiny_vit_registers", "mtdsl_tiny_eva"])
def test_a_branch_in_the_middle_of_a_vision_transformer_hands_on_its_prefix_tokens(model_name, monkeypatch, tmp_path):
    """At init a branch is a deep copy, so with the same head it gives the shared path's output, and what its
    head reads is timm's own map: the copied segments got the class and register tokens too. A head tapping a
    segment reads timm's intermediate map."""
    from mtdsl.nn.model import MultiTaskModel

    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path))
    compiled = compile_text(f"""
model vit
input 3x64x64
backbone trunk = timm("{model_name}")
dataset d = synthetic()
task whole: classify(d) {{ classes = 3 }}
task own: classify(d) {{ classes = 3; branch = trunk.stage1 }}
task middle: classify(d) {{ classes = 3; tap = trunk.stage2 }}
""")
    torch.manual_seed(2)
    vit = create_timm_model(model_name).eval()
    model = MultiTaskModel(compiled.graph, backbone_modules={"trunk": segments_of(vit)}).eval()
    model.heads["own"].load_state_dict(model.heads["whole"].state_dict())
    read: dict[str, torch.Tensor] = {}
    for task in ("own", "middle"):
        model.heads[task].register_forward_pre_hook(lambda _module, inputs, task=task: read.update({task: inputs[0]}))
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        outputs = model(images)
        expected = vit.forward_intermediates(images, intermediates_only=True)
        last = vit.forward_intermediates(images, indices=1, norm=True, intermediates_only=True)[-1]
    assert list(model.branches["own"]) == ["stage2", "stage3", PRE_LOGITS][: len(model.backbone["trunk"]) - 1]
    torch.testing.assert_close(outputs["own"], outputs["whole"])
    torch.testing.assert_close(read["own"], last, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(read["middle"], expected[1], rtol=1e-4, atol=1e-5)


def test_the_generated_model_of_a_branched_vision_transformer_equals_the_in_memory_one(monkeypatch, tmp_path):
    """model.py prints the same map views (``.as_map(tokens, x.shape[-2:])``), once per segment, for the tasks
    that read them."""
    import importlib.util

    from mtdsl.codegen.model_source import generate_model_source

    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path))
    compiled = compile_text("""
model vit
input 3x64x64
backbone trunk = timm("test_vit3")
neck pyramid = simple_pyramid(trunk, channels = 16, min_level = 3, max_level = 5)
dataset d = synthetic()
task kind: classify(d) { classes = 3 }
task own: classify(d) { classes = 2; branch = trunk.stage7 }
task mid: classify(d) { classes = 2; tap = trunk.stage9 }
task boxes: detect(d) { classes = 2; tap = pyramid }
""".replace("64x64", "160x160"))
    source = generate_model_source(compiled.graph)
    (tmp_path / "model.py").write_text(source)
    spec = importlib.util.spec_from_file_location("generated_vit", tmp_path / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = compiled.model().eval()
    generated = module.Model(load_pretrained=False).eval()
    generated.load_state_dict(model.state_dict())
    images = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        expected, got = model(images), generated(images)
    for task in ("kind", "own", "mid"):
        assert torch.equal(expected[task], got[task])
    assert all(torch.equal(a, b) for a, b in zip(expected["boxes"], got["boxes"], strict=True))
    views = sorted(line.strip() for line in source.splitlines() if ".as_map(" in line)  # stage9: head and neck
    assert views == sorted(["trunk_stage9_map = self.backbone['trunk']['stage9'].as_map(trunk_stage9, x.shape[-2:])",
                     "own__trunk_pre_logits_map = self.branches['own']['pre_logits'].as_map(own__trunk_pre_logits, "
                     "x.shape[-2:])",
                     "trunk_pre_logits_map = self.backbone['trunk']['pre_logits'].as_map(trunk_pre_logits, "
                     "x.shape[-2:])"])


def test_a_vision_transformer_feeds_a_simple_pyramid_and_dense_heads(monkeypatch, tmp_path):
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path))
    compiled = compile_text("""
model vitdet
input 3x64x64
backbone trunk = timm("mtdsl_tiny_vit_registers")
neck pyramid = simple_pyramid(trunk, channels = 16, min_level = 3, max_level = 6)
dataset d = synthetic()
task boxes: detect(d) { classes = 2; tap = pyramid }
task road: segment(d) { classes = 3; tap = pyramid }
""")
    model = compiled.model()
    outputs = model(torch.randn(2, 3, 64, 64))
    logits, deltas = outputs["boxes"]
    assert logits.shape[:2] == deltas.shape[:2] and logits.shape[0] == 2 and outputs["road"].shape == (2, 3, 64, 64)
    (logits.sum() + deltas.sum() + outputs["road"].sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    neck = next(data for _, data in compiled.graph.nodes(data=True) if data["kind"] == "neck")
    assert neck["inputs"] == ["trunk.stage3"] and neck["in_strides"] == [16]


def test_a_top_down_pyramid_on_a_plain_vision_transformer_suggests_the_simple_pyramid(monkeypatch, tmp_path):
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path))
    text = 'model m\ninput 3x64x64\nbackbone trunk = timm("mtdsl_tiny_vit_registers")\n' \
           "neck pyramid = fpn(trunk, channels = 16)\ndataset d = synthetic()\n" \
           "task boxes: detect(d) { classes = 2; tap = pyramid }\n"
    with pytest.raises(SpecValueError, match="maps at stride 16 only") as caught:
        compile_text(text, "vit.mtl")
    assert caught.value.span.line == 4
    assert "neck pyramid = simple_pyramid(trunk, channels = 16, min_level = 3" in caught.value.hint


def test_a_simple_pyramid_needs_a_power_of_two_stride(monkeypatch, tmp_path):
    text = 'model m\ninput 3x224x224\nbackbone trunk = timm("vit_small_patch14_reg4_dinov2")\n' \
           "neck pyramid = simple_pyramid(trunk)\ndataset d = synthetic()\n" \
           "task boxes: detect(d) { classes = 2; tap = pyramid }\n"
    with pytest.raises(SpecValueError, match="stride 14: no power of two") as caught:
        compile_text(text.replace("224x224", "518x518"), "dino.mtl")
    assert caught.value.span.line == 4


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
    assert ", runs whole (no branch inside): stage1 96/16" in lines["test_vit_relpos"]
    assert "have segments (segment channels/stride): 17 cut, 1 run whole (no branch inside); 0 refused" in listed.err
    assert "(NHWC inside)" in lines["test_mambaout"] and "(NLC inside)" in lines["test_vit"]
    assert main(["backbones", "test_vit*", "--all"]) == 0
    listed_all = capsys.readouterr().out.splitlines()
    assert len(listed_all) == len(timm.list_models("test_vit*"))
    assert not [line for line in listed_all if "refused: " in line]


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
        with pytest.raises(MtdslError) as caught:
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
