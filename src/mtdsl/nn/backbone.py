"""timm backbones cut into named segments (``stem``, ``stage1`` … ``stageN``, ``pre_logits``) as modules.

Which timm modules form each segment, and each segment's channels and stride,
is timm's metadata, read by the graph stage (:mod:`mtdsl.graph.backbones`,
whose names are re-exported here); this module builds the segments
themselves from a real timm model with the same :func:`~mtdsl.graph.backbones.cut`.

>>> segments = timm_segments("test_resnet")
>>> list(segments)[:3]
['stem', 'stage1', 'stage2']
"""

from __future__ import annotations

from collections import OrderedDict

import timm
from torch import nn

from mtdsl.graph.backbones import (
    PRE_LOGITS,
    SUPPORTED_FAMILIES,
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
    "SUPPORTED_FAMILIES",
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


def segments_of(model: nn.Module) -> nn.ModuleDict:
    """Cut a full timm model into an ``nn.ModuleDict`` of ``nn.Sequential`` segments."""
    return nn.ModuleDict(
        {
            segment: nn.Sequential(OrderedDict((name.replace(".", "_"), module) for name, module in parts))
            for segment, parts in cut(model).items()
        }
    )


def timm_segments(model_name: str, drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> nn.ModuleDict:
    """A randomly initialised timm backbone as named segments.

    Weights come later, through ``load_state_dict`` of the model that holds the segments.
    """
    kwargs = {"drop_rate": drop_rate}
    if drop_path_rate:
        kwargs["drop_path_rate"] = drop_path_rate
    return segments_of(create_timm_model(model_name, **kwargs))
