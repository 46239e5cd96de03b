"""A heatmap head on a feature pyramid, and the decoding of its heatmaps into points.

The head is the segmentation head's decoder (the finest pyramid levels merged, thesis
Fig. 6.7) with one output channel per named point, upsampled to ``1 / stride`` of the
image: each channel's logits say where its point is (SimpleBaseline, Xiao et al. 2018;
CenterNet's penalty-reduced focal loss, Zhou et al. 2019, in :mod:`mtdsl.nn.losses`).
One image holds one instance: a point is its channel's peak.

>>> head = HeatmapHead(8, num_points=4, num_levels_used=2, stride=4)
>>> maps = [torch.zeros(2, 8, 8, 8), torch.zeros(2, 8, 4, 4)]
>>> heatmaps = head(maps, (64, 64))
>>> tuple(heatmaps.shape)
(2, 4, 16, 16)
>>> points, scores = decode_heatmaps(heatmaps, (64, 64))
>>> tuple(points.shape), tuple(scores.shape)
((2, 4, 2), (2, 4))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mtdsl.nn.heads.dense import SegmentationHead
from mtdsl.nn.heads.registry import register_head
from mtdsl.nn.module_call import ModuleCall
from mtdsl.spec.heads import HeatmapHeadConfig

__all__ = ["HEATMAP_PRIOR", "HeatmapHead", "decode_heatmaps"]

#: Every heatmap cell's probability at initialisation (CenterNet's -2.19 bias): a heatmap is almost
#: all background, and a focal loss starting from 0.5 everywhere would be swamped by it.
HEATMAP_PRIOR = 0.1


class HeatmapHead(SegmentationHead):
    """Per-point heatmap logits at ``1 / stride`` of the image, from the finest ``num_levels_used`` levels.

    Args:
        channels: width of the neck's maps.
        num_points: output channels, one per named point.
        num_levels_used: how many levels to read, finest first.
        depth: convs per level before merging.
        stride: image pixels per heatmap cell (the heatmap is ``ceil(H / stride) x ceil(W / stride)``).
        separable: depthwise-separable convs instead of plain ones.

    Shapes:
        ``forward(features, image_size)``: ``L × (N, channels, H_l, W_l)`` → ``(N, num_points, h, w)``.
    """

    def __init__(self, channels: int, num_points: int, num_levels_used: int = 3, depth: int = 1, stride: int = 4,
                 separable: bool = False) -> None:
        super().__init__(channels, num_points, num_levels_used, depth, "sum", separable)
        self.stride = stride
        assert self.classifier.bias is not None  # a 1x1 conv with its bias
        with torch.no_grad():
            self.classifier.bias.fill_(-math.log((1 - HEATMAP_PRIOR) / HEATMAP_PRIOR))

    def forward(self, features: Sequence[torch.Tensor], image_size: Sequence[int]) -> torch.Tensor:
        return super().forward(features, [math.ceil(int(side) / self.stride) for side in image_size])


def decode_heatmaps(heatmaps: torch.Tensor, image_size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each point at its heatmap's peak, in input pixels, and the peak's probability.

    The peak cell's position is refined on each axis by the parabola through the log-probabilities
    of the peak and its two neighbours: a Gaussian's logarithm is a parabola, so for a Gaussian
    heatmap this finds its centre between cells (DARK, Zhang et al. 2020, one axis at a time). The
    shift stays within half a cell, and a peak on the border is not shifted. Cell ``j`` of a
    ``w``-wide heatmap covers input pixels ``[j, j + 1) * W / w``. Only tensor operations, so an
    exported model decodes the same way.

    Args:
        heatmaps: ``(N, K, h, w)`` logits.
        image_size: the input's ``(height, width)``.

    Returns:
        ``(N, K, 2)`` ``(x, y)`` in input pixels, and ``(N, K)`` sigmoid probabilities at the peaks.
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    peak = flat.argmax(dim=2, keepdim=True)
    scores = flat.gather(2, peak).squeeze(2).sigmoid()
    ys, xs = torch.div(peak, w, rounding_mode="floor"), peak % w

    def log_p(dy: int, dx: int) -> torch.Tensor:
        index = (ys + dy).clamp(0, h - 1) * w + (xs + dx).clamp(0, w - 1)
        return F.logsigmoid(flat.gather(2, index).squeeze(2))

    centre = log_p(0, 0)

    def shift(before: torch.Tensor, after: torch.Tensor, cell: torch.Tensor, cells: int) -> torch.Tensor:
        curvature = before - 2 * centre + after
        # a peak on the border has one neighbour: no parabola, no shift
        fits = (curvature < 0) & (cell > 0) & (cell < cells - 1)
        step = 0.5 * (before - after) / torch.where(fits, curvature, -torch.ones_like(curvature))
        return torch.where(fits, step, torch.zeros_like(step)).clamp(-0.5, 0.5)

    column, row = xs.squeeze(2), ys.squeeze(2)
    x = (column.to(heatmaps.dtype) + 0.5 + shift(log_p(0, -1), log_p(0, 1), column, w)) * (float(image_size[1]) / w)
    y = (row.to(heatmaps.dtype) + 0.5 + shift(log_p(-1, 0), log_p(1, 0), row, h)) * (float(image_size[0]) / h)
    return torch.stack([x, y], dim=2), scores


@register_head("heatmap")
def heatmap_call(config: HeatmapHeadConfig, in_channels: int, num_outputs: int, num_levels: int) -> ModuleCall:
    return ModuleCall.of(
        HeatmapHead, in_channels, num_outputs, num_levels_used=min(config.levels, num_levels), depth=config.depth,
        stride=config.stride, separable=config.separable,
    )
