"""Necks (BiFPN, FPN), their wiring, and the dense heads (detection, segmentation) on tiny inputs."""

from __future__ import annotations

import math

import pytest
import torch

from mtdsl.nn.backbone import backbone_info, timm_segments
from mtdsl.nn.heads.dense import DetectionHead, SegmentationHead, efficientdet_scaling, flatten_levels
from mtdsl.nn.necks import (
    FPN,
    BiFPN,
    Fusion,
    FusionNode,
    SimplePyramid,
    bifpn_wiring,
    fpn_wiring,
    output_offsets,
    pyramid_inputs,
)
from mtdsl.nn.necks.wiring import check_wiring

# efficientnet_b0's maps (stem, stage1 … stage4), as backbone_info reports them.
B0_CHANNELS = [16, 24, 40, 112, 320]
STRIDES = [2, 4, 8, 16, 32]


def maps(channels, strides, size=64, batch=2):
    """Random tensors shaped like a backbone's maps for a ``size``×``size`` input (sides round up)."""
    return [torch.randn(batch, c, math.ceil(size / s), math.ceil(size / s)) for c, s in zip(channels, strides)]


def count(module):
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- wiring


def test_bifpn_wiring_is_effdets_for_p3_p7():
    nodes = bifpn_wiring(3, 7)
    assert [(n.level, n.inputs) for n in nodes] == [
        (6, (3, 4)),  # top-down
        (5, (2, 5)),
        (4, (1, 6)),
        (3, (0, 7)),
        (4, (1, 7, 8)),  # bottom-up, with the skip edge from the level's input
        (5, (2, 6, 9)),
        (6, (3, 5, 10)),
        (7, (4, 11)),
    ]
    assert {n.weight_method for n in nodes} == {"fastattn"}
    assert output_offsets(nodes, 3, 7) == [8, 9, 10, 11, 12]


def test_fpn_wiring_is_top_down_only():
    nodes = fpn_wiring(3, 7)
    assert [n.level for n in nodes] == [6, 5, 4, 3]
    assert [n.inputs for n in nodes] == [(3, 4), (2, 5), (1, 6), (0, 7)]
    assert output_offsets(nodes, 3, 7) == [8, 7, 6, 5, 4]


def test_wiring_rejects_bad_nodes():
    with pytest.raises(ValueError, match="reads offsets"):
        check_wiring([FusionNode(4, (0, 5))], 3, 5)
    with pytest.raises(ValueError, match="weight_method"):
        FusionNode(3, (0,), "softmax")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_level <= max_level"):
        bifpn_wiring(5, 3)


def test_pyramid_inputs_pick_strides_and_explain_missing_ones():
    assert pyramid_inputs(STRIDES, 3, 7) == [2, 3, 4]
    assert pyramid_inputs(STRIDES, 2, 4) == [1, 2, 3]
    with pytest.raises(ValueError, match=r"stride 64.*strides \[2, 4, 8, 16, 32\].*min_level in \[1, 2, 3, 4, 5\]"):
        pyramid_inputs(STRIDES, 6, 7)
    with pytest.raises(ValueError, match="stride 8"):
        BiFPN([32, 64], [4, 16])


# ---------------------------------------------------------------- necks


@pytest.mark.parametrize("neck_class", [BiFPN, FPN])
def test_neck_on_a_tiny_backbone(neck_class):
    name = "test_efficientnet"
    info = backbone_info(name)
    channels, strides = [s.channels for s in info.segments], [s.reduction for s in info.segments]
    segments = timm_segments(name)
    x = torch.randn(2, 3, 64, 64)
    features = []
    for segment in segments.values():
        x = segment(x)
        features.append(x)
    neck = neck_class(channels, strides, channels=24)
    assert neck.levels == [3, 4, 5, 6, 7]
    assert neck.strides == [8, 16, 32, 64, 128]
    assert neck.out_channels == 24
    outputs = neck(features)
    assert [tuple(o.shape) for o in outputs] == [(2, 24, s, s) for s in (8, 4, 2, 1, 1)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: BiFPN(B0_CHANNELS, STRIDES, channels=16, repeats=2),
        lambda: BiFPN(B0_CHANNELS, STRIDES, channels=16, repeats=1, separable=False, weight_method="sum"),
        lambda: FPN(B0_CHANNELS, STRIDES, channels=16, extra="conv"),
        lambda: FPN(B0_CHANNELS, STRIDES, channels=16, extra="pool"),
    ],
)
def test_neck_handles_odd_sides(make):
    # 72×72: P3 9×9, P4 5×5, P5 3×3, P6 2×2, P7 1×1; upsampling 3→5 must land on the finer map's size.
    outputs = make()(maps(B0_CHANNELS, STRIDES, size=72))
    assert [o.shape[-1] for o in outputs] == [9, 5, 3, 2, 1]
    assert {o.shape[1] for o in outputs} == {16}


def test_neck_synthesises_every_level_above_the_backbone():
    neck = BiFPN(B0_CHANNELS, STRIDES, channels=16, repeats=1, min_level=5, max_level=7)
    assert neck.in_indices == [4]
    assert len(neck.extra) == 2
    outputs = neck(maps(B0_CHANNELS, STRIDES, size=128))
    assert [o.shape[-1] for o in outputs] == [4, 2, 1]


def test_neck_wants_every_backbone_map():
    neck = FPN(B0_CHANNELS, STRIDES, channels=16)
    with pytest.raises(ValueError, match="built for 5 backbone maps but got 3"):
        neck(maps(B0_CHANNELS, STRIDES)[2:])


def test_fast_normalised_fusion():
    fusion = Fusion(3)
    a, b, c = (torch.randn(1, 4, 3, 3, requires_grad=True) for _ in range(3))
    torch.testing.assert_close(fusion([a, b, c]), (a + b + c) / (3 + 1e-4))  # weights start at 1: an average
    with torch.no_grad():
        fusion.weight.copy_(torch.tensor([2.0, 0.0, -1.0]))  # relu: a negative weight also drops its input
    out = fusion([a, b, c])
    torch.testing.assert_close(out, a * 2 / (2 + 1e-4))
    torch.testing.assert_close(fusion([a, b + 5, c - 5]), out)
    out.sum().backward()
    assert b.grad is not None and torch.count_nonzero(b.grad) == 0
    assert torch.count_nonzero(a.grad) > 0
    assert fusion.weight.grad is not None and fusion.weight.grad[0] != 0
    assert float(fusion.normalized_weights().detach().sum()) == pytest.approx(1.0, abs=1e-4)
    assert Fusion(2, "sum").weight is None


def test_bifpn_fusion_weights_are_learnt():
    neck = BiFPN(B0_CHANNELS, STRIDES, channels=16, repeats=2)
    weights = [m.weight for m in neck.modules() if isinstance(m, Fusion)]
    assert len(weights) == 2 * 8
    assert sum(w.numel() for w in weights) == 2 * 19  # 4 top-down × 2 inputs + 3 × 3 + 2 bottom-up
    torch.manual_seed(0)
    # Not o.mean(): BatchNorm's output mean is its bias whatever the input, so its gradient is 0.
    sum((o * torch.randn_like(o)).sum() for o in neck(maps(B0_CHANNELS, STRIDES))).backward()
    assert all(w.requires_grad and w.grad is not None and w.grad.abs().sum() > 0 for w in weights)


def test_bifpn_d0_parameter_count_matches_effdet():
    """EfficientDet-D0's BiFPN on efficientnet_b0 (40, 112, 320 at strides 8, 16, 32): 194,361 parameters.

    Per layer: 8 nodes × (separable 3×3: 64·9 + 64·64, BN: 128) + 19 fusion weights = 38,419; × 3 layers.
    Backbone projections, as effdet (one 1×1 conv + BN per edge, first layer only): P3 once (2,688),
    P4 twice (2 × 7,296), P5 twice (2 × 20,608); P6 from P5: 20,608; P7 is a max-pool. With
    efficientnet_b0's features (3,595,388) and the D0 heads for COCO (90 classes, 9 anchors: 88,014)
    that is 3,877,763, the paper's 3.9M for D0.
    """
    setting = efficientdet_scaling(0)
    neck = BiFPN(B0_CHANNELS, STRIDES, channels=setting["channels"], repeats=setting["repeats"])
    assert count(neck) == 3 * 38_419 + 2_688 + 2 * 7_296 + 3 * 20_608 == 194_361
    head = DetectionHead(setting["channels"], 5, num_classes=90, num_anchors=9, depth=setting["head_depth"])
    backbone = sum(s.parameters for s in backbone_info(setting["backbone"]).stages)  # a detector reads no pre-logits
    assert count(head) == 88_014
    assert backbone + count(neck) + count(head) == pytest.approx(3.9e6, rel=0.01)


# ---------------------------------------------------------------- heads


def test_detection_head_shapes_and_class_prior():
    pyramid = [torch.randn(2, 16, s, s) for s in (8, 4, 2, 1, 1)]
    head = DetectionHead(16, num_levels=5, num_classes=3, num_anchors=9, depth=2)
    classes, boxes = head(pyramid)
    anchors = (64 + 16 + 4 + 1 + 1) * 9
    assert classes.shape == (2, anchors, 3)
    assert boxes.shape == (2, anchors, 4)
    assert torch.sigmoid(head.class_net.predict_bias).allclose(torch.tensor(0.01))
    assert torch.count_nonzero(head.box_net.predict_bias) == 0
    assert 0.001 < torch.sigmoid(classes).median() < 0.05
    with pytest.raises(ValueError, match="5 pyramid levels got 4"):
        head(pyramid[:4])


def test_flattened_outputs_run_level_y_x_anchor():
    num_anchors, k = 2, 3
    # value = 1000·level + 100·y + 10·x + anchor, in every one of the K channels of that anchor
    outputs = []
    for level, side in enumerate((2, 1)):
        y, x, a = torch.meshgrid(torch.arange(side), torch.arange(side), torch.arange(num_anchors), indexing="ij")
        value = (1000 * level + 100 * y + 10 * x + a).float()  # (H, W, A)
        channels_last = value[..., None].expand(side, side, num_anchors, k).reshape(side, side, num_anchors * k)
        outputs.append(channels_last.permute(2, 0, 1)[None])  # (1, A·K, H, W), channel a·K + k
    flat = flatten_levels(outputs, num_anchors)
    assert flat.shape == (1, (4 + 1) * num_anchors, k)
    assert flat[0, :, 0].tolist() == [0, 1, 10, 11, 100, 101, 110, 111, 1000, 1001]


@pytest.mark.parametrize("merge", ["sum", "cat"])
def test_segmentation_head_predicts_at_image_size(merge):
    pyramid = [torch.randn(2, 16, 12 // 2**i, 16 // 2**i) for i in range(5)]
    head = SegmentationHead(16, num_classes=4, num_levels_used=3, depth=1, merge=merge)
    assert head(pyramid, (96, 128)).shape == (2, 4, 96, 128)


def test_efficientdet_scaling():
    d0 = efficientdet_scaling(0)
    assert (d0["image_size"], d0["channels"], d0["repeats"], d0["head_depth"]) == (512, 64, 3, 3)
    assert (d0["backbone"], d0["tf_backbone"]) == ("efficientnet_b0", "tf_efficientnet_b0")
    table = [efficientdet_scaling(d) for d in range(8)]
    assert [s["image_size"] for s in table] == [512, 640, 768, 896, 1024, 1280, 1280, 1536]
    assert [s["channels"] for s in table] == [64, 88, 112, 160, 224, 288, 384, 384]
    assert table[7]["backbone"] == "efficientnet_b6"
    with pytest.raises(ValueError, match="D0–D7"):
        efficientdet_scaling(8)


# ------------------------------------------------------------------ simple_pyramid (ViTDet)


@pytest.mark.parametrize("min_level, max_level", [(2, 6), (3, 6), (4, 5), (5, 7), (6, 6)])
def test_simple_pyramid_makes_every_level_from_one_map(min_level, max_level):
    neck = SimplePyramid([32], [16], channels=8, min_level=min_level, max_level=max_level)
    pyramid = neck(maps([32], [16], size=128))
    assert [tuple(p.shape) for p in pyramid] == [(2, 8, 128 // 2**level, 128 // 2**level) for level in neck.levels]
    assert neck.strides == [2**level for level in range(min_level, max_level + 1)]
    assert all(torch.isfinite(p).all() for p in pyramid)


def test_simple_pyramid_is_vitdets_layers():
    """Scale 4: deconv, LN, GELU, deconv (halving the width twice); 2: one deconv; 1: none; 1/2: a 2×2 max-pool;
    each then a 1×1 and a 3×3 conv without bias, each with a LayerNorm; P6 a stride-2 pool of P5 (LastLevelMaxPool)."""
    neck = SimplePyramid([64], [16], channels=16, min_level=2, max_level=6)
    kinds = [[type(layer).__name__ for layer in scale] for scale in neck.scales]
    tail = ["Conv2d", "LayerNorm2d", "Conv2d", "LayerNorm2d"]
    assert kinds == [["ConvTranspose2d", "LayerNorm2d", "GELU", "ConvTranspose2d", *tail],
                     ["ConvTranspose2d", *tail], tail, ["MaxPool2d", *tail]]
    assert [m.out_channels for m in neck.scales[0] if isinstance(m, torch.nn.ConvTranspose2d)] == [32, 16]
    assert neck.extra_levels == 1
    pyramid = neck([torch.randn(1, 64, 4, 4)])
    assert torch.equal(pyramid[4], pyramid[3][..., ::2, ::2])


def test_simple_pyramid_refuses_a_stride_that_is_no_power_of_two():
    with pytest.raises(ValueError, match="power-of-two stride, got stride 14"):
        SimplePyramid([32], [14])
