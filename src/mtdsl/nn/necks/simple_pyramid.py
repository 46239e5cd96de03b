"""ViTDet's simple feature pyramid: every level made from one map (Li et al. 2022; detectron2's SimpleFeaturePyramid).

A plain vision transformer has one map stride (its patch size), so there is
no pyramid to read. Each level ``l`` is made from the backbone's last map at
stride ``2**k`` alone: ``k - l`` 2×2 transposed convolutions up (halving the
width each, with LayerNorm and GELU between), none at ``l = k``, a 2×2
max-pool at ``l = k + 1``; then a 1×1 and a 3×3 convolution to ``channels``,
each followed by a LayerNorm, as ViTDet's ``norm="LN"``. Levels above ``k + 1``
are max-pools (kernel 1, stride 2) of the level below, ViTDet's
``LastLevelMaxPool``. Same interface as :class:`~mtdsl.nn.necks.fpn.FPN`.

>>> neck = SimplePyramid([32], [16], channels=16, min_level=2, max_level=6)
>>> neck.levels, neck.strides, neck.out_channels
([2, 3, 4, 5, 6], [4, 8, 16, 32, 64], 16)
>>> [tuple(p.shape) for p in neck([torch.randn(1, 32, 4, 4)])]
[(1, 16, 16, 16), (1, 16, 8, 8), (1, 16, 4, 4), (1, 16, 2, 2), (1, 16, 1, 1)]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch import nn

from mtdsl.nn.necks.pyramid import Pyramid
from mtdsl.spec.necks import check_levels


class SimplePyramid(Pyramid):
    """A feature pyramid built from a backbone's last map.

    Args:
        in_channels: widths of the maps the neck reads (it uses the last).
        in_strides: their strides; the last must be a power of two, ``2**k``.
        channels: width of every pyramid level.
        min_level, max_level: pyramid levels produced (stride ``2**level``).

    Raises:
        ValueError: the last map's stride is not a power of two.

    Shapes:
        ``forward(features)`` takes the maps (the last at ``(N, C, H / 2**k, W / 2**k)``) and
        returns one ``(N, channels, H / 2**l, W / 2**l)`` map per level ``l`` in ``levels``, finest first.
    """

    def __init__(
        self,
        in_channels: list[int],
        in_strides: list[int],
        channels: int = 64,
        min_level: int = 3,
        max_level: int = 6,
    ) -> None:
        super().__init__()
        check_levels(min_level, max_level)
        stride = in_strides[-1]
        if stride < 1 or stride & (stride - 1):
            raise ValueError(f"simple_pyramid needs a map at a power-of-two stride, got stride {stride}")
        self.in_level = stride.bit_length() - 1
        self.min_level, self.max_level = min_level, max_level
        self.out_channels = channels
        built = [level for level in self.levels if level <= self.in_level + 1 or level == min_level]
        self.scales = nn.ModuleList(self._scale(in_channels[-1], channels, level - self.in_level) for level in built)
        self.extra_levels = max_level - built[-1]
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @staticmethod
    def _scale(width: int, channels: int, shift: int) -> nn.Sequential:
        """The layers from the input map to one level ``shift`` levels away (``< 0``: finer)."""
        layers: list[nn.Module] = []
        for step in range(-shift):
            narrower = max(width // 2, 1)
            if step:
                layers += [LayerNorm2d(width), nn.GELU()]
            layers.append(nn.ConvTranspose2d(width, narrower, 2, stride=2))
            width = narrower
        if shift > 0:
            layers.append(nn.MaxPool2d(2**shift, stride=2**shift))
        layers += [
            nn.Conv2d(width, channels, 1, bias=False), LayerNorm2d(channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), LayerNorm2d(channels),
        ]
        return nn.Sequential(*layers)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        x = features[-1]
        pyramid = [scale(x) for scale in self.scales]
        for _ in range(self.extra_levels):
            pyramid.append(F.max_pool2d(pyramid[-1], kernel_size=1, stride=2))
        return pyramid
