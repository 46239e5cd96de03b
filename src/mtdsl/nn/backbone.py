"""timm backbones cut into named segments (``stem``, ``stage1`` … ``stageN``, ``pre_logits``) as modules.

Which timm modules form each segment, and each segment's channels and stride,
is timm's metadata, read by the graph stage (:mod:`mtdsl.graph.backbones`,
whose names are re-exported here); this module builds the segments
themselves from a real timm model with the same :func:`~mtdsl.graph.backbones.cut`.

Models whose stages hold channels-last maps (``NHWC``: Swin, MambaOut) get
a permutation at each segment's ends, so every segment hands on ``NCHW``
maps as ResNet's do; the permutations hold no weights, so state-dict keys
are timm's.

>>> segments = timm_segments("test_resnet")
>>> list(segments)[:3]
['stem', 'stage1', 'stage2']
>>> stage2 = timm_segments("test_mambaout")["stage2"]
>>> [name for name, _ in stage2.named_children()][::2]
['to_nhwc', 'to_nchw']
"""

from __future__ import annotations

from collections import OrderedDict

import timm
import torch
from torch import nn

from mtdsl.graph.backbones import (
    PRE_LOGITS,
    BackboneInfo,
    SegmentInfo,
    backbone_info,
    cut,
    family,
    is_known_model,
    known_models,
    segment_names,
)

__all__ = [
    "PRE_LOGITS",
    "BackboneInfo",
    "SegmentInfo",
    "backbone_info",
    "create_timm_model",
    "family",
    "is_known_model",
    "known_models",
    "segment_names",
    "segments_of",
    "timm_segments",
]


def create_timm_model(model_name: str, **kwargs) -> nn.Module:
    return timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)


class ToChannelsLast(nn.Module):
    """``(N, C, H, W)`` → ``(N, H, W, C)``: a segment's input, for a model whose stages are channels-last."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


class ToChannelsFirst(nn.Module):
    """``(N, H, W, C)`` → ``(N, C, H, W)``: a segment's output, as heads and necks read maps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


def segments_of(model: nn.Module) -> nn.ModuleDict:
    """Cut a full timm model into an ``nn.ModuleDict`` of ``nn.Sequential`` segments that hand on ``NCHW`` maps."""
    channels_last = str(getattr(model, "output_fmt", "NCHW")).endswith("NHWC")
    segments = nn.ModuleDict()
    for index, (segment, parts) in enumerate(cut(model).items()):
        modules = [(name.replace(".", "_"), module) for name, module in parts]
        if channels_last:  # the first segment reads the image, which is NCHW whatever the model's layout
            modules = ([("to_nhwc", ToChannelsLast())] if index else []) + modules + [("to_nchw", ToChannelsFirst())]
        segments[segment] = nn.Sequential(OrderedDict(modules))
    return segments


def timm_segments(model_name: str, drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> nn.ModuleDict:
    """A randomly initialised timm backbone as named segments.

    Weights come later, through ``load_state_dict`` of the model that holds the segments.
    """
    kwargs = {"drop_rate": drop_rate}
    if drop_path_rate:
        kwargs["drop_path_rate"] = drop_path_rate
    return segments_of(create_timm_model(model_name, **kwargs))
