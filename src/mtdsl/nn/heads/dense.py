"""Dense heads on a feature pyramid: EfficientDet's detection head and a segmentation head (thesis Fig. 6.7).

Both read the list of maps a neck (:mod:`mtdsl.nn.necks`) returns, finest level
first, all of the neck's width. They are plain modules; their configs (``reads =
"pyramid"``) are in :mod:`mtdsl.spec.heads`, and their builders are registered at
the end of this file.

EfficientDet's compound scaling (one knob, ``scale = d``) lives in :mod:`mtdsl.spec.scaling`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from timm.layers import SeparableConv2d
from torch import nn

from mtdsl.nn.heads.registry import register_head
from mtdsl.nn.module_call import ModuleCall
from mtdsl.nn.necks.bifpn import NormLayer, batch_norm
from mtdsl.spec.heads import EfficientDetHeadConfig, Merge, SegmentationHeadConfig
from mtdsl.spec.scaling import efficientdet_scaling

__all__ = ["DetectionHead", "HeadNet", "SegmentationHead", "efficientdet_scaling", "flatten_levels"]

#: Prior probability of every class at initialisation (RetinaNet, Lin et al. 2017): the class
#: bias is ``-log((1 - π) / π)`` so the focal loss is not swamped by easy negatives early on.
CLASS_PRIOR = 0.01


def _conv3x3(channels: int, out_channels: int, separable: bool, bias: bool) -> nn.Module:
    if separable:
        return SeparableConv2d(channels, out_channels, 3, bias=bias)
    return nn.Conv2d(channels, out_channels, 3, padding=1, bias=bias)


def _variance_scaling_(module: nn.Module) -> None:
    # effdet's head init (TensorFlow's VarianceScaling, fan-in): N(0, 1/fan_in), biases zero.
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel()
            nn.init.normal_(m.weight, std=math.sqrt(1.0 / fan_in))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class HeadNet(nn.Module):
    """EfficientDet's class or box net: ``depth`` × (3×3 conv → per-level norm → act), then a 3×3 predictor.

    Conv weights are shared across levels; each level has its own norm (effdet),
    since feature statistics differ between levels.

    Shapes:
        ``num_levels × (N, channels, H_l, W_l) -> num_levels × (N, num_outputs, H_l, W_l)``
    """

    def __init__(
        self,
        channels: int,
        num_levels: int,
        num_outputs: int,
        depth: int = 3,
        separable: bool = True,
        norm_layer: NormLayer = batch_norm,
        act_layer: type[nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        self.num_levels = num_levels
        self.conv_rep = nn.ModuleList(_conv3x3(channels, channels, separable, bias=False) for _ in range(depth))
        self.norm_rep = nn.ModuleList(
            nn.ModuleList(norm_layer(channels) for _ in range(num_levels)) for _ in range(depth)
        )
        self.act = act_layer()
        self.predict = _conv3x3(channels, num_outputs, separable, bias=True)
        _variance_scaling_(self)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != self.num_levels:
            raise ValueError(f"head built for {self.num_levels} pyramid levels got {len(features)} maps")
        outputs = []
        for level, x in enumerate(features):
            for conv, norms in zip(self.conv_rep, self.norm_rep):
                x = self.act(cast(nn.ModuleList, norms)[level](conv(x)))
            outputs.append(self.predict(x))
        return outputs

    @property
    def predict_bias(self) -> torch.Tensor:
        conv = self.predict.conv_pw if isinstance(self.predict, SeparableConv2d) else self.predict
        return cast(torch.Tensor, conv.bias)


def flatten_levels(outputs: Sequence[torch.Tensor], num_anchors: int) -> torch.Tensor:
    """Per-level dense outputs → one ``(N, Σ_l H_l·W_l·num_anchors, K)`` tensor.

    Each ``(N, num_anchors·K, H, W)`` output (channel ``a·K + k`` is value ``k`` of
    anchor ``a``) becomes ``(N, H, W, num_anchors, K)`` and then
    ``(N, H·W·num_anchors, K)``; levels are concatenated finest first. Row ``i``
    therefore runs level → y → x → anchor, which is the order anchor generation
    must produce (effdet's ``Anchors``).
    """
    flat = []
    for out in outputs:
        n, channels, h, w = out.shape
        k = channels // num_anchors
        flat.append(out.permute(0, 2, 3, 1).reshape(n, h * w * num_anchors, k))
    return torch.cat(flat, dim=1)


class DetectionHead(nn.Module):
    """EfficientDet's class and box nets on a pyramid.

    Args:
        channels: width of the neck's maps.
        num_levels: pyramid levels read (P3–P7: 5).
        num_classes: object classes (sigmoid per class, no background class).
        num_anchors: anchors per location (EfficientDet: 3 scales × 3 aspect ratios = 9).
        depth: conv repeats of each net (D0: 3; see :func:`efficientdet_scaling`).
        separable: depthwise-separable convs (EfficientDet) or plain ones.

    Shapes:
        ``forward(features)``: ``num_levels × (N, channels, H_l, W_l)`` →
        ``(class_logits (N, A, num_classes), box_regression (N, A, 4))`` with
        ``A = Σ_l H_l·W_l·num_anchors`` in level → y → x → anchor order (:func:`flatten_levels`).
        At initialisation every class probability is ``sigmoid(bias) = 0.01`` (:data:`CLASS_PRIOR`).
    """

    def __init__(
        self,
        channels: int,
        num_levels: int,
        num_classes: int,
        num_anchors: int = 9,
        depth: int = 3,
        separable: bool = True,
        norm_layer: NormLayer = batch_norm,
        act_layer: type[nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_anchors = num_anchors
        self.class_net = HeadNet(
            channels, num_levels, num_classes * num_anchors, depth, separable, norm_layer, act_layer
        )
        self.box_net = HeadNet(channels, num_levels, 4 * num_anchors, depth, separable, norm_layer, act_layer)
        with torch.no_grad():
            self.class_net.predict_bias.fill_(-math.log((1 - CLASS_PRIOR) / CLASS_PRIOR))

    def forward(
        self, features: Sequence[torch.Tensor], image_size: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``image_size`` is accepted like every pyramid head's, and unused: boxes are relative to anchors."""
        classes = flatten_levels(self.class_net(features), self.num_anchors)
        boxes = flatten_levels(self.box_net(features), self.num_anchors)
        return classes, boxes


class SegmentationHead(nn.Module):
    """Per-pixel classes from the finest pyramid levels (an FPN-style decoder on the neck).

    Each of the first ``num_levels_used`` levels (P3, P4, P5 by default) goes
    through ``depth`` × (3×3 conv → norm → act) of its own, is upsampled
    (bilinear) to the finest level's size, and the levels are merged by ``sum``
    or ``cat``; a 3×3 conv → norm → act and a 1×1 classifier follow, and the
    logits are upsampled bilinearly to the image size.

    Args:
        channels: width of the neck's maps.
        num_classes: output channels (1 for a binary mask, as KITTI road).
        num_levels_used: how many levels to read, finest first.
        depth: convs per level before merging (0 for none).
        merge: ``sum`` or ``cat`` (concatenate along channels).
        separable: depthwise-separable convs instead of plain ones.

    Shapes:
        ``forward(features, image_size)``: ``L × (N, channels, H_l, W_l)`` with ``L >= num_levels_used``
        → ``(N, num_classes, *image_size)`` logits.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        num_levels_used: int = 3,
        depth: int = 1,
        merge: Merge = "sum",
        separable: bool = False,
        norm_layer: NormLayer = batch_norm,
        act_layer: type[nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        if merge not in ("sum", "cat"):
            raise ValueError(f"unknown merge {merge!r}, valid merges: sum, cat")
        if num_levels_used < 1:
            raise ValueError(f"SegmentationHead needs num_levels_used >= 1, got {num_levels_used}")
        self.num_levels_used = num_levels_used
        self.merge = merge

        def block(in_channels: int) -> nn.Sequential:
            return nn.Sequential(
                _conv3x3(in_channels, channels, separable, bias=False), norm_layer(channels), act_layer()
            )

        self.levels = nn.ModuleList(
            nn.Sequential(*(block(channels) for _ in range(depth))) for _ in range(num_levels_used)
        )
        self.fuse = block(channels * num_levels_used if merge == "cat" else channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: Sequence[torch.Tensor], image_size: Sequence[int]) -> torch.Tensor:
        if len(features) < self.num_levels_used:
            raise ValueError(
                f"segmentation head reads {self.num_levels_used} pyramid levels but got {len(features)} maps"
            )
        size = features[0].shape[-2:]
        maps = []
        for module, x in zip(self.levels, features[: self.num_levels_used]):
            x = module(x)
            if x.shape[-2:] != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            maps.append(x)
        x = torch.cat(maps, dim=1) if self.merge == "cat" else torch.stack(maps, dim=0).sum(dim=0)
        logits = self.classifier(self.fuse(x))
        return F.interpolate(logits, size=tuple(image_size), mode="bilinear", align_corners=False)


# ---------------------------------------------------------------- registry entries

@register_head("efficientdet")
def efficientdet_call(
    config: EfficientDetHeadConfig, in_channels: int, num_outputs: int, num_levels: int
) -> ModuleCall:
    return ModuleCall.of(
        DetectionHead, in_channels, num_levels, num_outputs, num_anchors=config.anchors_per_location,
        depth=config.depth, separable=config.separable,
    )


@register_head("segmentation")
def segmentation_call(
    config: SegmentationHeadConfig, in_channels: int, num_outputs: int, num_levels: int
) -> ModuleCall:
    return ModuleCall.of(
        SegmentationHead, in_channels, num_outputs, num_levels_used=min(config.levels, num_levels),
        depth=config.depth, merge=config.merge, separable=config.separable,
    )
