"""timm backbones cut into named segments (``stem``, ``stage1`` … ``stageN``, ``pre_logits``) as modules.

Which timm modules form each segment, and each segment's channels and stride,
is timm's metadata, read by the graph stage (:mod:`mtdsl.graph.backbones`,
whose names are re-exported here); this module builds the segments
themselves from a real timm model with the same :func:`~mtdsl.graph.backbones.cut`.

Vision transformers without class or register tokens (SigLIP, AIMv2,
``*_gap``; :func:`~mtdsl.graph.backbones.token_cut`) are cut between blocks:
the first segment embeds the patches, and every segment turns its input map
into tokens, runs its blocks and hands on the tokens as a map on the patch
grid, as timm's ``forward_intermediates`` does.

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
from collections.abc import Sequence
from typing import Any

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
    is_token_model,
    known_models,
    segment_names,
    token_cut,
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


class ToTokens(nn.Module):
    """``(N, C, H, W)`` → ``(N, H*W, C)``: a map back into a vision transformer's tokens."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


class ToMap(nn.Module):
    """``(N, H*W, C)`` → ``(N, C, H, W)`` on the patch grid, as timm's ``forward_intermediates`` returns maps."""

    def __init__(self, grid: tuple[int, int]) -> None:
        super().__init__()
        self.grid = tuple(grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *self.grid)

    def extra_repr(self) -> str:
        return f"grid={self.grid}"


class TokenEmbedding(nn.Module):
    """A vision transformer's patch and position embeddings: images → tokens (timm's own ``_pos_embed``)."""

    def __init__(self, vit: Any) -> None:  # timm types its models as nn.Module
        super().__init__()
        self.patch_embed = vit.patch_embed
        self.pos_embed = vit.pos_embed
        self.pos_drop = vit.pos_drop
        self.patch_drop = vit.patch_drop
        self.norm_pre = vit.norm_pre
        # What timm's _pos_embed reads besides the modules: a model without prefix tokens, on a fixed grid.
        self.cls_token = self.reg_token = None
        self.num_prefix_tokens = 0
        self.no_embed_class = vit.no_embed_class
        self.dynamic_img_size = False
        self._pos_embed_of = type(vit)._pos_embed

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self._pos_embed_of(self, self.patch_embed(images))
        return self.norm_pre(self.patch_drop(x))  # type: ignore[operator]  # modules, typed as attributes


def token_segments_of(vit: Any) -> nn.ModuleDict:
    """A vision transformer without prefix tokens cut between blocks (see :func:`~mtdsl.graph.backbones.token_cut`)."""
    grid = tuple(vit.patch_embed.grid_size)
    segments = nn.ModuleDict()
    for index, (segment, names) in enumerate(token_cut(vit).items()):
        first: tuple[str, nn.Module] = ("embed", TokenEmbedding(vit)) if index == 0 else ("to_tokens", ToTokens())
        modules = [first]
        modules += [(name.replace(".", "_"), vit.get_submodule(name)) for name in names if name.startswith("blocks.")]
        if segment == PRE_LOGITS:
            modules.append(("norm", vit.norm))
        segments[segment] = nn.Sequential(OrderedDict([*modules, ("to_map", ToMap(grid))]))
    return segments


def segments_of(model: nn.Module, keep: Sequence[str] | None = None) -> nn.ModuleDict:
    """Cut a full timm model into an ``nn.ModuleDict`` of ``nn.Sequential`` segments that hand on ``NCHW`` maps.

    ``keep``: the segments the graph stage found (``backbone_info(name).names``); a ``pre_logits`` it
    dropped, because the layers after the last stage do not run in order, is left out.
    """
    if is_token_model(model):
        return token_segments_of(model)
    channels_last = str(getattr(model, "output_fmt", "NCHW")).endswith("NHWC")
    segments = nn.ModuleDict()
    for index, (segment, parts) in enumerate(cut(model).items()):
        if keep is not None and segment not in keep:
            continue
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
    return segments_of(create_timm_model(model_name, **kwargs), backbone_info(model_name).names)
