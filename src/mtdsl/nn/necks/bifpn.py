"""BiFPN, EfficientDet's bidirectional feature pyramid (Tan et al. 2020; thesis §5.4, Fig. 6.7).

Built generically from the wiring in :mod:`mtdsl.nn.necks.wiring`, after
effdet's ``BiFpn``:

1. The backbone maps at strides ``2**min_level …`` feed levels ``min_level …``;
   missing upper levels are synthesised from the last one by a 1×1 conv + BN
   (only where its width differs from ``channels``) and a 3×3/2 max-pool, then
   further max-pools (effdet's ``ResampleFeatureMap``).
2. ``repeats`` BiFPN layers. Each fusion node resamples its inputs to its level
   (a 1×1 conv + BN where an input's width differs from ``channels``, which only
   happens for backbone maps in the first layer, as in effdet; nearest upsampling
   or 3×3/2 max-pooling between levels), fuses them, then applies
   act → separable 3×3 conv → BN.

Fast normalised fusion (paper Eq. 2), for inputs ``x_i`` and learned scalars ``v_i``:

    w_i = relu(v_i),    out = Σ_i w_i · x_i / (Σ_j w_j + ε),    ε = 1e-4

so each weight lies in ``[0, 1)``, a zero weight removes its input, and ``v``
starts at 1 (a plain average). ``sum`` fusion drops the weights (EfficientDet
D6/D7 use it for stability).

>>> neck = BiFPN([16, 24, 40, 112, 320], [2, 4, 8, 16, 32], channels=64, repeats=3)
>>> neck.levels, neck.strides, neck.out_channels
([3, 4, 5, 6, 7], [8, 16, 32, 64, 128], 64)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from timm.layers import SeparableConv2d
from torch import nn

from mtdsl.nn.necks.pyramid import Pyramid
from mtdsl.nn.necks.wiring import FusionNode, WeightMethod, bifpn_wiring, check_wiring, output_offsets, pyramid_inputs

NormLayer = Callable[[int], nn.Module]

#: BatchNorm for necks and dense heads: effdet's eps (1e-3), PyTorch's momentum (0.1). effdet's momentum,
#: 0.01 (TensorFlow's 0.99), suits its 300-epoch runs; after the tens of steps of a short run, the running
#: statistics it gives are still far from the data's, and an evaluated model predicts garbage.
batch_norm: NormLayer = functools.partial(nn.BatchNorm2d, eps=1e-3, momentum=0.1)

FUSION_EPS = 1e-4


def downsample(x: torch.Tensor, steps: int = 1) -> torch.Tensor:
    """Halve the sides ``steps`` times (rounding up) by 3×3 stride-2 max-pooling."""
    # 3×3/2 max-pool with padding 1 halves a side rounding up, like the backbones' stride-2 convs.
    for _ in range(steps):
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    return x


class Resample(nn.Module):
    """Move a map ``shift`` levels (``> 0`` down, ``< 0`` up) and to ``out_channels``.

    A 1×1 conv + norm projects first when the widths differ (effdet: before
    downsampling). Downsampling max-pools ``shift`` times; upsampling is nearest
    to the target ``size`` (so odd sides round-trip). Given ``size``, the
    result always has it.

    Shapes:
        ``(N, in_channels, H, W) -> (N, out_channels, *size)``
    """

    def __init__(self, in_channels: int, out_channels: int, shift: int, norm_layer: NormLayer = batch_norm) -> None:
        super().__init__()
        self.shift = shift
        self.conv: nn.Module | None = None
        if in_channels != out_channels:
            self.conv = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), norm_layer(out_channels))

    def forward(self, x: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        if self.shift > 0:
            x = downsample(x, self.shift)
            if size is not None and x.shape[-2:] != tuple(size):
                # A backbone that rounds odd sides down: snap to the level's actual size.
                x = F.interpolate(x, size=tuple(size), mode="nearest")
            return x
        if self.shift < 0:
            if size is None:
                return F.interpolate(x, scale_factor=2.0 ** (-self.shift), mode="nearest")
            return F.interpolate(x, size=tuple(size), mode="nearest")
        return x


class Fusion(nn.Module):
    """Weighted sum of same-shaped maps: fast normalised (``fastattn``) or plain (``sum``).

    ``fastattn``: ``Σ_i relu(v_i) x_i / (Σ_j relu(v_j) + 1e-4)`` with ``v`` learned, initialised to 1.

    Shapes:
        ``k × (N, C, H, W) -> (N, C, H, W)``
    """

    def __init__(self, num_inputs: int, weight_method: WeightMethod = "fastattn") -> None:
        super().__init__()
        self.weight_method = weight_method
        self.weight: nn.Parameter | None = None
        if weight_method == "fastattn":
            self.weight = nn.Parameter(torch.ones(num_inputs))

    def normalized_weights(self) -> torch.Tensor | None:
        """The effective weights ``relu(v) / (Σ relu(v) + ε)``, or ``None`` for ``sum``."""
        if self.weight is None:
            return None
        w = F.relu(self.weight)
        return w / (w.sum() + FUSION_EPS)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        # Added in turn, not stacked and reduced over a last axis: the same sum, without a copy of every
        # input and a strided reduction (8% of a batch-1 pass of a D0 model on CPU, benchmarks/sharing_payoff.py).
        normalized = self.normalized_weights()
        weights: torch.Tensor | list[None] = (
            [None] * len(inputs) if normalized is None else normalized.to(inputs[0].dtype)
        )
        fused = inputs[0] if weights[0] is None else weights[0] * inputs[0]
        for weight, x in zip(weights[1:], inputs[1:]):
            fused = fused + (x if weight is None else weight * x)
        return fused


class FusionNodeModule(nn.Module):
    """One BiFPN node: resample each input to the node's level, fuse, act → separable 3×3 conv → norm."""

    def __init__(
        self,
        node: FusionNode,
        input_channels: list[int],
        input_levels: list[int],
        channels: int,
        separable: bool = True,
        norm_layer: NormLayer = batch_norm,
        act_layer: type[nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        self.node = node
        # ModuleDict keys are offsets, as in effdet, so state dicts name the edge they resample.
        self.resample = nn.ModuleDict(
            {
                str(offset): Resample(input_channels[offset], channels, node.level - input_levels[offset], norm_layer)
                for offset in node.inputs
            }
        )
        self.fuse = Fusion(len(node.inputs), node.weight_method)
        self.act = act_layer()
        # No conv bias: the norm right after it has one.
        self.conv = (
            SeparableConv2d(channels, channels, 3)
            if separable
            else nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        )
        self.norm = norm_layer(channels)

    def forward(self, features: list[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        inputs = [self.resample[str(offset)](features[offset], size) for offset in self.node.inputs]
        return self.norm(self.conv(self.act(self.fuse(inputs))))


class BiFPNLayer(nn.Module):
    """One pyramid layer built from a wiring: ``levels`` maps in, one map per level out.

    Args:
        in_channels: width of each input level (backbone widths in the first layer).
        channels: width of every node.
        nodes: the wiring (see :func:`~mtdsl.nn.necks.wiring.bifpn_wiring`).
        min_level, max_level: levels of the inputs and outputs.
    """

    def __init__(
        self,
        in_channels: list[int],
        channels: int,
        nodes: list[FusionNode],
        min_level: int,
        max_level: int,
        separable: bool = True,
        norm_layer: NormLayer = batch_norm,
        act_layer: type[nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        check_wiring(nodes, min_level, max_level)
        self.min_level = min_level
        self.outputs = output_offsets(nodes, min_level, max_level)
        feature_channels = list(in_channels)
        feature_levels = list(range(min_level, max_level + 1))
        self.nodes = nn.ModuleList()
        for node in nodes:
            self.nodes.append(
                FusionNodeModule(
                    node, feature_channels, feature_levels, channels, separable, norm_layer, act_layer
                )
            )
            feature_channels.append(channels)
            feature_levels.append(node.level)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        sizes = [f.shape[-2:] for f in features]
        features = list(features)
        nodes: list[FusionNodeModule] = list(self.nodes)  # type: ignore[arg-type]  # a ModuleList of them
        for module in nodes:
            features.append(module(features, sizes[module.node.level - self.min_level]))
        return [features[offset] for offset in self.outputs]


def _init_neck(module: nn.Module) -> None:
    # effdet initialises neck convs Glorot-uniform, biases to zero (TensorFlow's Keras default).
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class BiFPN(Pyramid):
    """EfficientDet's BiFPN on the maps of a backbone.

    Args:
        in_channels: widths of the backbone's maps (every segment, in order).
        in_strides: strides of the same maps.
        channels: BiFPN width (EfficientDet-D0: 64).
        repeats: stacked BiFPN layers (D0: 3).
        min_level, max_level: pyramid levels produced (stride ``2**level``). Maps at
            strides ``2**min_level …`` feed the neck; levels above the last one are synthesised.
        separable: depthwise-separable 3×3 convs in the nodes (EfficientDet) or plain ones.
        weight_method: ``fastattn`` (learned fusion weights) or ``sum``.
        norm_layer: norm constructor taking the width (BatchNorm, eps 1e-3, momentum 0.1).
        act_layer: activation class (SiLU, EfficientDet's swish).

    Raises:
        ValueError: the backbone has no map at stride ``2**min_level``.

    Shapes:
        ``forward(features)`` takes all ``len(in_channels)`` backbone maps and returns one
        ``(N, channels, H / 2**l, W / 2**l)`` map per level ``l`` in ``levels``, finest first.
    """

    def __init__(
        self,
        in_channels: list[int],
        in_strides: list[int],
        channels: int = 64,
        repeats: int = 3,
        min_level: int = 3,
        max_level: int = 7,
        separable: bool = True,
        weight_method: WeightMethod = "fastattn",
        norm_layer: NormLayer = batch_norm,
        act_layer: type[nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        if len(in_channels) != len(in_strides):
            raise ValueError(f"in_channels {in_channels} and in_strides {in_strides} differ in length")
        if repeats < 1:
            raise ValueError(f"BiFPN needs repeats >= 1, got {repeats}")
        self.in_indices = pyramid_inputs(list(in_strides), min_level, max_level)
        self.num_inputs = len(in_channels)
        self.min_level, self.max_level = min_level, max_level
        self.out_channels = channels
        self.wiring = bifpn_wiring(min_level, max_level, weight_method)

        level_channels = [in_channels[i] for i in self.in_indices]
        # Extra levels: the first from the last backbone map (projected), the rest from the one below.
        self.extra = nn.ModuleList()
        for _ in range(max_level - min_level + 1 - len(level_channels)):
            self.extra.append(Resample(level_channels[-1], channels, 1, norm_layer))
            level_channels.append(channels)

        self.layers = nn.ModuleList()
        for _ in range(repeats):
            self.layers.append(
                BiFPNLayer(
                    level_channels, channels, self.wiring, min_level, max_level, separable, norm_layer, act_layer
                )
            )
            level_channels = [channels] * len(level_channels)
        _init_neck(self)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        pyramid = select_levels(features, self.in_indices, self.num_inputs)
        for resample in self.extra:
            pyramid.append(resample(pyramid[-1]))
        for layer in self.layers:
            pyramid = layer(pyramid)
        return pyramid


def select_levels(features: Sequence[torch.Tensor], indices: list[int], expected: int) -> list[torch.Tensor]:
    """The backbone maps that feed a neck, after checking the caller passed every map."""
    if len(features) != expected:
        raise ValueError(
            f"the neck was built for {expected} backbone maps but got {len(features)}; "
            "pass every backbone feature map in order (the neck picks levels by stride)"
        )
    return [features[i] for i in indices]
