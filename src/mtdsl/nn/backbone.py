"""timm backbones cut into named segments (``stem``, ``stage1`` … ``stageN``, ``pre_logits``) as modules.

Which timm modules form each segment, and each segment's channels and stride,
is timm's metadata, read by the graph stage (:mod:`mtdsl.graph.backbones`,
whose names are re-exported here); this module builds the segments
themselves from a real timm model with the same :func:`~mtdsl.graph.backbones.cut`.

timm's vision transformers (``VisionTransformer``, ``Eva``, ``Beit``;
:func:`~mtdsl.graph.backbones.token_cut`) are cut between blocks: the first
segment embeds the patches (class and register tokens first, with timm's own
``_pos_embed``), and every segment runs its blocks
on tokens and hands on tokens, so the prefix tokens reach every block as in
timm's forward pass. What a neck or a head reads is the segment's map
(:meth:`TokenSegment.as_map`: the patch tokens on the patch grid, as timm's
``forward_intermediates`` returns them); the module plan puts that view
between the segment and its reader (:mod:`mtdsl.nn.plan`).

A model that cannot be cut runs whole (:func:`~mtdsl.graph.backbones.whole_info`):
its first segment is timm's ``features_only`` extractor (:class:`WholeExtractor`),
which outputs the list of all its maps, and each later segment
(:class:`WholeTap`) hands that list on; what a neck or a head reading segment
``k`` gets is map ``k`` (``as_map``, put between them by the module plan as for
tokens).

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
    token_class,
    token_cut,
)

__all__ = [
    "PRE_LOGITS",
    "BackboneInfo",
    "SegmentInfo",
    "TokenSegment",
    "WholeExtractor",
    "WholeTap",
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


class TokenEmbedding(nn.Module):
    """A vision transformer's patch and position embeddings: images → tokens, prefix tokens first.

    It holds timm's own modules and parameters (``cls_token``, ``reg_token``,
    ``pos_embed``: ``None`` where the model has none) under timm's names, and
    runs timm's own ``_pos_embed`` on them, so every variant timm's model takes
    (``no_embed_class``, ``dynamic_img_size``) embeds as it does in timm.
    """

    def __init__(self, vit: Any) -> None:  # timm types its models as nn.Module
        super().__init__()
        self.patch_embed = vit.patch_embed
        self.cls_token = vit.cls_token
        self.reg_token = vit.reg_token
        self.pos_embed = vit.pos_embed
        self.pos_drop = vit.pos_drop
        self.patch_drop = vit.patch_drop
        self.norm_pre = vit.norm_pre
        self.num_prefix_tokens: int = vit.num_prefix_tokens
        self.no_embed_class: bool = vit.no_embed_class
        self.dynamic_img_size: bool = vit.dynamic_img_size
        self._pos_embed_of = type(vit)._pos_embed

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self._pos_embed_of(self, self.patch_embed(images))
        return self.norm_pre(self.patch_drop(x))  # type: ignore[operator]  # modules, typed as attributes


class EvaEmbedding(TokenEmbedding):
    """EVA's embedding: timm's ``Eva._pos_embed`` without its rotary part, which each segment computes itself.

    (The graph stage refuses an EVA that drops patches, so there is no ``patch_drop`` to run.)
    """

    def __init__(self, eva: Any) -> None:
        nn.Module.__init__(self)
        self.patch_embed = eva.patch_embed
        self.cls_token = eva.cls_token
        self.reg_token = eva.reg_token
        self.pos_embed = eva.pos_embed
        self.pos_drop = eva.pos_drop
        self.norm_pre = eva.norm_pre
        self.patch_drop = None
        self.rope = None
        self.num_prefix_tokens = eva.num_prefix_tokens
        self.no_embed_class = eva.no_embed_class
        self.dynamic_img_size = eva.dynamic_img_size
        self._pos_embed_of = type(eva)._pos_embed

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x, _ = self._pos_embed_of(self, self.patch_embed(images))
        return self.norm_pre(x)  # type: ignore[operator]  # a module, typed as an attribute


class BeitEmbedding(nn.Module):
    """BEiT's embedding, as its ``forward_features`` writes it: the class token, then the position embedding."""

    def __init__(self, beit: Any) -> None:
        super().__init__()
        self.patch_embed = beit.patch_embed
        self.cls_token = beit.cls_token
        self.pos_embed = beit.pos_embed
        self.pos_drop = beit.pos_drop

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        return self.pos_drop(x)  # type: ignore[operator]  # a module, typed as an attribute


#: The embedding of each timm class cut between blocks (see :data:`~mtdsl.graph.backbones.TOKEN_EMBEDDINGS`).
EMBEDDINGS: dict[str, type[nn.Module]] = {
    "timm.models.vision_transformer.VisionTransformer": TokenEmbedding,
    "timm.models.eva.Eva": EvaEmbedding,
    "timm.models.beit.Beit": BeitEmbedding,
}


class TokenSegment(nn.Sequential):
    """Blocks of a vision transformer: tokens ``(N, P + H*W, C)`` in and out (images in, for the first segment).

    ``P`` prefix tokens (class, register) come first, as in timm; :meth:`as_map` is the
    map a neck or a head reads. ``fixed_grid``: the patch grid of a model that takes one
    image size; ``None`` for a ``dynamic_img_size`` model, whose grid follows the image.
    """

    def __init__(self, modules: OrderedDict[str, nn.Module], prefix_tokens: int, patch_size: tuple[int, int],
                 fixed_grid: tuple[int, int] | None = None, padded: bool = False) -> None:
        super().__init__(modules)
        self.prefix_tokens = prefix_tokens
        self.patch_size = (int(patch_size[0]), int(patch_size[1]))
        self.fixed_grid = None if fixed_grid is None else (int(fixed_grid[0]), int(fixed_grid[1]))
        self.padded = padded

    def grid(self, image_size: Sequence[int]) -> tuple[int, int]:
        """The patch grid of an image: timm's ``PatchEmbed`` rounds down, or up where it pads (``dynamic_img_pad``)."""
        if self.fixed_grid is not None:
            return self.fixed_grid
        height, width = (int(side) for side in image_size)
        (rows, row_rest), (columns, column_rest) = divmod(height, self.patch_size[0]), divmod(width, self.patch_size[1])
        if self.padded:
            rows, columns = rows + bool(row_rest), columns + bool(column_rest)
        return rows, columns

    def as_map(self, tokens: torch.Tensor, image_size: Sequence[int]) -> torch.Tensor:
        """``(N, P + H*W, C)`` → ``(N, C, H, W)``: the patch tokens on the grid, as timm's ``forward_intermediates``."""
        patches = tokens[:, self.prefix_tokens:]
        return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *self.grid(image_size))

    def extra_repr(self) -> str:
        return f"prefix_tokens={self.prefix_tokens}, patch_size={self.patch_size}"


class RotaryTokenSegment(TokenSegment):
    """EVA's blocks, which also take the rotary position embedding of the (fixed) patch grid.

    ``rope`` is the model's one rotary module, in every segment (and copied into a branch);
    it holds no weights and no state-dict entries, only buffers it computes.
    """

    def __init__(self, modules: OrderedDict[str, nn.Module], rope: nn.Module, prefix_tokens: int,
                 patch_size: tuple[int, int], fixed_grid: tuple[int, int]) -> None:
        super().__init__(modules, prefix_tokens, patch_size, fixed_grid)
        self.rope = rope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rope: Any = self.rope
        embedding = rope.get_embed() if hasattr(rope, "feat_shape") else rope.get_embed(shape=self.fixed_grid)
        for name, module in self.named_children():
            if name.startswith("blocks_"):
                x = module(x, rope=embedding)
            elif name != "rope":
                x = module(x)
        return x


def token_segments_of(vit: Any) -> nn.ModuleDict:
    """A vision transformer cut between blocks (see :func:`~mtdsl.graph.backbones.token_cut`)."""
    patch_size = tuple(vit.patch_embed.patch_size)
    fixed_grid = None if getattr(vit, "dynamic_img_size", False) else tuple(vit.patch_embed.grid_size)
    padded = bool(getattr(vit.patch_embed, "dynamic_img_pad", False))
    rope = getattr(vit, "rope", None)
    embedding = EMBEDDINGS[token_class(vit)]
    segments = nn.ModuleDict()
    for index, (segment, names) in enumerate(token_cut(vit).items()):
        modules: list[tuple[str, nn.Module]] = [("embed", embedding(vit))] if index == 0 else []
        modules += [(name.replace(".", "_"), vit.get_submodule(name)) for name in names if name.startswith("blocks.")]
        if segment == PRE_LOGITS:
            modules.append(("norm", vit.norm))
        if rope is not None and fixed_grid is not None:
            segments[segment] = RotaryTokenSegment(OrderedDict(modules), rope, vit.num_prefix_tokens, patch_size,
                                                   fixed_grid)
        else:
            segments[segment] = TokenSegment(OrderedDict(modules), vit.num_prefix_tokens, patch_size, fixed_grid,
                                             padded)
    return segments


class WholeExtractor(nn.Module):
    """timm's ``features_only`` extractor, run whole: images in, the list of its ``NCHW`` maps out (finest first).

    It is the first segment of a backbone that cannot be cut, and holds all its
    weights under timm's own keys (``extractor.…``); ``channels_last``: the
    extractor outputs ``NHWC`` maps, turned here to ``NCHW``.
    """

    def __init__(self, extractor: nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        self.extractor = extractor
        self.channels_last = channels_last

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        maps = self.extractor(images)
        return [x.permute(0, 3, 1, 2) if self.channels_last else x for x in maps]

    def as_map(self, maps: Sequence[torch.Tensor], image_size: Sequence[int]) -> torch.Tensor:
        """The first map: this segment's, as a neck or a head reads it."""
        return maps[0]


class WholeTap(nn.Module):
    """A later segment of a backbone run whole: it holds nothing and hands the maps on; :meth:`as_map` is its own."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        return maps

    def as_map(self, maps: Sequence[torch.Tensor], image_size: Sequence[int]) -> torch.Tensor:
        """Map ``index`` of the extractor's: this segment's, as a neck or a head reads it."""
        return maps[self.index]

    def extra_repr(self) -> str:
        return f"index={self.index}"


def whole_segments(extractor: nn.Module, info: BackboneInfo) -> nn.ModuleDict:
    """A backbone run whole: the extractor in the first segment, a :class:`WholeTap` per later one."""
    segments = nn.ModuleDict()
    for index, name in enumerate(info.names):
        segments[name] = WholeExtractor(extractor, info.layout == "NHWC") if not index else WholeTap(index)
    return segments


def create_extractor(model_name: str, **kwargs) -> nn.Module:
    """timm's ``features_only`` extractor of a model, randomly initialised unless ``kwargs`` say ``pretrained``."""
    return timm.create_model(model_name, **{"pretrained": False, **kwargs, "features_only": True})


def segments_of(model: nn.Module, keep: Sequence[str] | None = None) -> nn.ModuleDict:
    """Cut a full timm model into an ``nn.ModuleDict`` of ``nn.Sequential`` segments that hand on ``NCHW`` maps
    (a vision transformer's hand on tokens: :class:`TokenSegment`).

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
    info = backbone_info(model_name)
    if info.whole:
        return whole_segments(create_extractor(model_name, **kwargs), info)
    return segments_of(create_timm_model(model_name, **kwargs), info.names)
