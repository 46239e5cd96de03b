"""Classic FPN (Lin et al. 2017): lateral 1×1 convs, a top-down path, 3×3 output convs.

The top-down path is the wiring :func:`~mtdsl.nn.necks.wiring.fpn_wiring` over
the levels the backbone provides (``P_l = lateral(C_l) + up(P_{l+1})``, nearest
upsampling, plain sum). Levels above the backbone's are synthesised from the
top output: by a 3×3 stride-2 conv (ReLU before every conv after the first, as
RetinaNet) or by a 3×3/2 max-pool. Same interface as :class:`~mtdsl.nn.necks.bifpn.BiFPN`.

>>> neck = FPN([16, 24, 40, 112, 320], [2, 4, 8, 16, 32], channels=64)
>>> neck.levels, neck.strides, neck.out_channels
([3, 4, 5, 6, 7], [8, 16, 32, 64, 128], 64)
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mtdsl.nn.necks.bifpn import Fusion, Resample, downsample, select_levels
from mtdsl.nn.necks.pyramid import Pyramid
from mtdsl.nn.necks.wiring import fpn_wiring, output_offsets, pyramid_inputs

ExtraLevels = Literal["conv", "pool"]


class FPN(Pyramid):
    """A feature pyramid on the maps of a backbone.

    Args:
        in_channels: widths of the backbone's maps (every segment, in order).
        in_strides: strides of the same maps.
        channels: width of every pyramid level.
        min_level, max_level: pyramid levels produced (stride ``2**level``).
        extra: how levels above the backbone's are made: ``conv`` (3×3 stride 2) or ``pool`` (max-pool).

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
        min_level: int = 3,
        max_level: int = 7,
        extra: ExtraLevels = "conv",
    ) -> None:
        super().__init__()
        if len(in_channels) != len(in_strides):
            raise ValueError(f"in_channels {in_channels} and in_strides {in_strides} differ in length")
        if extra not in ("conv", "pool"):
            raise ValueError(f"unknown extra-level method {extra!r}, valid methods: conv, pool")
        self.in_indices = pyramid_inputs(list(in_strides), min_level, max_level)
        self.num_inputs = len(in_channels)
        self.min_level, self.max_level = min_level, max_level
        self.out_channels = channels
        self.extra_method = extra

        top = min_level + len(self.in_indices) - 1
        self.wiring = fpn_wiring(min_level, top)
        self.outputs = output_offsets(self.wiring, min_level, top)
        self.lateral = nn.ModuleList(nn.Conv2d(in_channels[i], channels, 1) for i in self.in_indices)
        levels = list(range(min_level, top + 1))
        for node in self.wiring:
            levels.append(node.level)
        self.resample = nn.ModuleList(
            nn.ModuleList(Resample(channels, channels, node.level - levels[offset]) for offset in node.inputs)
            for node in self.wiring
        )
        self.fuse = nn.ModuleList(Fusion(len(node.inputs), node.weight_method) for node in self.wiring)
        self.output = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in self.in_indices)
        self.extra = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, stride=2, padding=1) if extra == "conv" else nn.Identity()
            for _ in range(max_level - top)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        inputs = select_levels(features, self.in_indices, self.num_inputs)
        maps = [lateral(x) for lateral, x in zip(self.lateral, inputs)]
        sizes = [x.shape[-2:] for x in maps]
        for node, resample, fuse in zip(self.wiring, self.resample, self.fuse):
            size = sizes[node.level - self.min_level]
            maps.append(fuse([r(maps[offset], size) for r, offset in zip(resample.children(), node.inputs)]))
        pyramid = [conv(maps[offset]) for conv, offset in zip(self.output, self.outputs)]
        for k, module in enumerate(self.extra):
            x = pyramid[-1]
            if self.extra_method == "pool":
                pyramid.append(downsample(x, 1))
            else:
                pyramid.append(module(F.relu(x) if k > 0 else x))
        return pyramid
