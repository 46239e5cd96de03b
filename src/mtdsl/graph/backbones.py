"""What timm says about a backbone: its segments ``stem``, ``stage1`` … ``stageN``, their channels, strides and sizes.

A segment ends at each of timm's feature taps (``feature_info``), so segment
``k`` outputs the ``k``-th feature map and its channels and stride come from
timm's metadata, never from a dummy forward pass. For ResNets the segments
are ``act1 | layer1 | … | layer4``; for EfficientNets ``blocks.0 | blocks.1 |
blocks.2 | blocks.3-4 | blocks.5-6``. These are the model's *stages*.

Which models can be cut is timm's own answer (:func:`read_backbone`): those
whose ``features_only`` extractor runs their modules in order, whatever the
family, and timm's plain vision transformers (``VisionTransformer``: ViT, DeiT,
DeiT-III, SigLIP, DINOv2, AIMv2, with or without class and register tokens;
``Eva``: EVA, EVA-02 and the rotary ViTs; ``Beit``), cut between blocks
(:func:`token_cut`). Any name timm takes works: an architecture, a
pretrained tag (``resnet18.a1_in1k``) or a hub name (``hf-hub:…``).

Every other model that timm builds with ``features_only=True`` runs *whole*
(:func:`whole_info`): timm's extractor (``forward_intermediates``, hooks, taps
out of order) cannot be cut module by module, so the first segment holds all of
it and outputs all its maps, and each later segment hands them on, weightless.
Segment ``k`` still stands for map ``k`` (what a neck or a head reading it
gets), but nothing can branch inside such a backbone: a task's own copy of a
later segment would own no weights (:attr:`BackboneInfo.whole`).

Where timm's classifier reads through more layers than the last feature map
(EfficientNet's ``conv_head`` + ``bn2``, MobileNetV3's pooled ``conv_head``), a
last segment ``pre_logits`` holds them, with their pretrained weights: it is
what ``forward_head(pre_logits=True)`` pools, so a classification head on it is
timm's own classifier. ResNets have none. The global pool and the classifier
are dropped: heads replace them.

This is the graph stage's one reader of timm. It builds the model on the meta
device (no memory, no compute) and imports timm, and with it torch, only when
it must: what it read is kept per timm version in a file
(:mod:`mtdsl.graph.backbone_cache`), so checking a spec whose backbones were
read before imports neither. :mod:`mtdsl.nn.backbone` cuts real models with
the same :func:`cut`.

>>> info = backbone_info("test_resnet")
>>> [(s.name, s.channels, s.reduction) for s in info.segments][:2]
[('stem', 32, 2), ('stage1', 32, 4)]
>>> [(s.name, s.channels) for s in backbone_info("test_efficientnet").segments][-2:]
[('stage4', 64), ('pre_logits', 256)]
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from typing import Any

from mtdsl.graph import backbone_cache

#: Where a model name names weights elsewhere than timm's registry (``hf-hub:timm/resnet18.a1_in1k``).
SOURCES = ("hf-hub", "local-dir")
#: The layouts a cut model's stages may have inside; segments hand on ``NCHW`` maps whatever the layout.
#: ``NLC`` is a vision transformer's tokens (see :func:`token_cut`): its segments hand on tokens to the next
#: segment, and whatever else reads a segment reads its tokens as a map (``TokenSegment.as_map``).
LAYOUTS = ("NCHW", "NHWC", "NLC")
TOKENS = "NLC"
#: The timm classes cut between blocks (by their timm module), and what each one's first segment runs before its
#: first block (``cls_token``, ``reg_token``, ``pos_embed`` are parameters, ``None`` where a model has none).
TOKEN_EMBEDDINGS = {
    "timm.models.vision_transformer.VisionTransformer":
        ("patch_embed", "cls_token", "reg_token", "pos_embed", "patch_drop", "norm_pre"),
    "timm.models.eva.Eva": ("patch_embed", "cls_token", "reg_token", "pos_embed", "norm_pre"),
    "timm.models.beit.Beit": ("patch_embed", "cls_token", "pos_embed"),
}

#: The segment after the last stage that timm's classifier reads (see the module docstring).
PRE_LOGITS = "pre_logits"
#: Modules after the last stage that belong to timm's classifier, which heads replace.
_CLASSIFIER_PARTS = ("flatten", "head_drop", "fc", "classifier", "head")


@dataclass(frozen=True)
class SegmentInfo:
    """One segment: its output ``channels``, its ``reduction`` (stride) from the input, and the timm modules it runs.

    ``pooled`` segments output ``(N, channels, 1, 1)`` whatever the input size (MobileNetV3's pre-logits).
    """

    name: str
    channels: int
    reduction: int
    timm_modules: tuple[str, ...]
    parameters: int
    pooled: bool = False


@dataclass(frozen=True)
class DataConfig:
    """How the model's pretrained weights saw images: timm's pretrained config for this name (tag or hub name).

    ``fixed_input_size`` models (Swin, MaxViT, CoAtNet) take ``input_size``
    images only. ``interpolation``, ``crop_pct`` and ``crop_mode`` are timm's
    evaluation resize (``resize to side / crop_pct, then crop``); ``mean`` and
    ``std`` normalise.
    """

    input_size: tuple[int, int, int] = (3, 224, 224)
    fixed_input_size: bool = False
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    crop_mode: str = "center"
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)

    @classmethod
    def from_pretrained_cfg(cls, config: dict[str, Any]) -> DataConfig:
        """Read from a timm model's ``pretrained_cfg``; a key it lacks keeps timm's default."""
        defaults = cls()
        _, height, width = config.get("input_size") or defaults.input_size
        return cls(
            input_size=(3, int(height), int(width)),
            fixed_input_size=bool(config.get("fixed_input_size", False)),
            interpolation=str(config.get("interpolation") or defaults.interpolation),
            crop_pct=float(config.get("crop_pct") or defaults.crop_pct),
            crop_mode=str(config.get("crop_mode") or defaults.crop_mode),
            mean=tuple(float(v) for v in config.get("mean") or defaults.mean),
            std=tuple(float(v) for v in config.get("std") or defaults.std),
        )

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DataConfig:
        return cls.from_pretrained_cfg(record)


@dataclass(frozen=True)
class BackboneInfo:
    """What timm says about one model name: its family, its segments, or why it cannot be cut.

    ``layout`` is how the model's stages hold their maps (``NHWC`` for Swin or
    MambaOut; segments convert, so what they hand on is always ``NCHW``).
    ``refusal`` says why a model cannot be cut into segments (then ``segments``
    is empty); it is kept like the rest, so a refused model is not read twice.
    ``whole``: timm's ``features_only`` extractor runs whole in the first
    segment, the others hand its maps on (see :func:`whole_info`); ``layout`` is
    then the extractor's output layout.
    """

    model: str
    family: str
    segments: tuple[SegmentInfo, ...]
    layout: str = "NCHW"
    refusal: str = ""
    data: DataConfig = DataConfig()
    whole: bool = False

    def segment(self, name: str) -> SegmentInfo:
        return next(s for s in self.segments if s.name == name)

    @property
    def stages(self) -> tuple[SegmentInfo, ...]:
        """The segments that end at a feature map of timm's ``feature_info`` (what necks read)."""
        return tuple(s for s in self.segments if s.name != PRE_LOGITS)

    def index(self, name: str) -> int:
        return [s.name for s in self.segments].index(name)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.segments]

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> BackboneInfo:
        segments = tuple(
            SegmentInfo(**{**segment, "timm_modules": tuple(segment["timm_modules"])}) for segment in record["segments"]
        )
        data = DataConfig.from_record(record["data"])
        return cls(record["model"], record["family"], segments, record["layout"], record["refusal"], data,
                   bool(record.get("whole", False)))


def segment_names(count: int, first_reduction: int) -> list[str]:
    if first_reduction <= 2:
        return ["stem"] + [f"stage{i}" for i in range(1, count)]
    return [f"stage{i}" for i in range(1, count + 1)]


def _ordered_modules(model: Any, taps: list[str]) -> list[tuple[str, Any]]:
    """The model's modules in execution order, flattened just enough to reach every tap."""

    def expand(prefix: str, module: Any) -> list[tuple[str, Any]]:
        result = []
        for name, child in module.named_children():
            qualified = f"{prefix}{name}"
            if any(tap.startswith(qualified + ".") for tap in taps):
                result += expand(qualified + ".", child)
            else:
                result.append((qualified, child))
        return result

    return expand("", model)


def cut(model: Any) -> OrderedDict[str, list[tuple[str, Any]]]:
    """A timm model's modules grouped into segments: segment name → ``[(qualified name, module), …]``."""
    infos = model.feature_info
    taps = [info["module"] for info in infos]
    names = segment_names(len(taps), infos[0]["reduction"])
    segments: OrderedDict[str, list[tuple[str, Any]]] = OrderedDict((n, []) for n in names)
    modules = _ordered_modules(model, taps)
    position = 0
    for segment, tap in zip(names, taps):
        while True:
            qualified, module = modules[position]
            segments[segment].append((qualified, module))
            position += 1
            if qualified == tap:
                break
    pre_logits = _pre_logits(model, modules[position:])
    if pre_logits:
        segments[PRE_LOGITS] = pre_logits
    return segments


def token_class(model: Any) -> str:
    """``module.Class`` of a timm model, the key of :data:`TOKEN_EMBEDDINGS`."""
    return f"{type(model).__module__}.{type(model).__name__}"


def is_token_model(model: Any) -> bool:
    """A timm ``VisionTransformer``, ``Eva`` or ``Beit``: a vision transformer it can cut between blocks.

    Its class and register tokens (``num_prefix_tokens``) are part of no map, so its
    segments hand on tokens, prefix tokens included; a map is what a reader other
    than the next segment sees. Subclasses (DeiT's distilled ViT) are not: their
    embedding is their own. Whether a given EVA or BEiT can be cut is
    :func:`_token_refusal`'s answer.
    """
    return token_class(model) in TOKEN_EMBEDDINGS


def _token_refusal(model: Any) -> str:
    """Why a vision transformer cannot be cut between blocks, or ``""``.

    A model that drops patches while training hands on tokens on no patch grid.
    EVA's blocks take rotary position embeddings, which each segment computes
    from the model's ``rope`` module for the patch grid: that grid must be fixed
    and the embeddings the same for every block. BEiT's blocks may share one
    relative position bias, computed once per forward pass.
    """
    if type(getattr(model, "patch_drop", None)).__name__ not in ("Identity", "NoneType"):
        return "it drops patches while training (patch_drop_rate), so its tokens lie on no patch grid"
    if token_class(model) == "timm.models.eva.Eva":
        if model.rope is not None and model.dynamic_img_size:
            return ("its rotary position embedding follows each image's patch grid (dynamic_img_size), which "
                    "no segment after the first sees")
        if getattr(model, "rope_mixed", False):
            return "its rotary position embedding differs per block (rope_mixed), so it is no input of a segment"
    if token_class(model) == "timm.models.beit.Beit" and model.rel_pos_bias is not None:
        return "its blocks share one relative position bias, computed once per forward pass before them"
    return ""


def token_cut(model: Any) -> OrderedDict[str, list[str]]:
    """A token model's parts per segment: the embedding and block 0, then a block per tap, then the final norm.

    >>> import timm, torch
    >>> with torch.device("meta"):
    ...     vit = timm.create_model("vit_base_patch16_224", depth=3, num_classes=0)
    >>> dict(token_cut(vit))  # doctest: +NORMALIZE_WHITESPACE
    {'stage1': ['patch_embed', 'cls_token', 'reg_token', 'pos_embed', 'patch_drop', 'norm_pre', 'blocks.0'],
     'stage2': ['blocks.1'], 'stage3': ['blocks.2'], 'pre_logits': ['norm']}
    """
    taps = [info["module"] for info in model.feature_info]
    names = segment_names(len(taps), model.feature_info[0]["reduction"])
    blocks = [f"blocks.{index}" for index in range(len(model.blocks))]
    groups: OrderedDict[str, list[str]] = OrderedDict()
    start = 0
    for segment, tap in zip(names, taps):
        end = blocks.index(tap) + 1
        groups[segment] = (list(TOKEN_EMBEDDINGS[token_class(model)]) if not start else []) + blocks[start:end]
        start = end
    if any(True for _ in model.norm.parameters()):
        groups[PRE_LOGITS] = ["norm"]
    return groups


def _pre_logits(model: Any, rest: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The layers between the last stage and timm's classifier, or ``[]`` when there are none with weights.

    A global pool that ends them is dropped (heads pool); one that comes before
    more layers (MobileNetV3 pools, then convolves) is kept.
    """
    classifier = model.pretrained_cfg.get("classifier") or "fc"
    kept = [(name, module) for name, module in rest if name not in (classifier, *_CLASSIFIER_PARTS)]
    while kept and kept[-1][0] == "global_pool":
        kept.pop()
    has_weights = any(True for _, module in kept for _ in module.parameters())
    return kept if has_weights else []


def split_source(model_name: str) -> tuple[str, str]:
    """``("hf-hub", "timm/resnet18.a1_in1k")`` for a hub name, ``("", "resnet18.a1_in1k")`` for a registry one.

    >>> split_source("hf-hub:timm/resnet18.a1_in1k"), split_source("resnet18.a1_in1k")
    (('hf-hub', 'timm/resnet18.a1_in1k'), ('', 'resnet18.a1_in1k'))
    """
    source, colon, rest = model_name.partition(":")
    if colon and source in SOURCES:
        return source, rest
    if colon and source == "timm":
        return "", rest
    return "", model_name


def architecture(model_name: str) -> str:
    """The registry architecture a name builds: ``resnet18`` for ``resnet18.a1_in1k`` (``""`` for a hub name)."""
    source, name = split_source(model_name)
    return "" if source else name.partition(".")[0]


def family(model_name: str) -> str:
    """The timm module that defines a model, e.g. ``resnet`` for ``resnet101`` (``""`` for no timm model)."""
    cached = backbone_cache.read(model_name)
    if cached is not None:
        return cached["family"]
    if split_source(model_name)[0]:
        return backbone_info(model_name).family
    import timm

    return timm.models._registry._model_to_module.get(architecture(model_name), "")


def is_known_model(model_name: str) -> bool:
    """timm's registry has the architecture, and the pretrained tag if one is given; hub names are read to know."""
    if backbone_cache.read(model_name) is not None or split_source(model_name)[0]:
        return True
    import timm

    if not timm.is_model(model_name):
        return False
    return "." not in model_name or model_name in pretrained_tags(model_name)


def pretrained_tags(model_name: str) -> list[str]:
    """The ``architecture.tag`` names timm has weights for, for the architecture of ``model_name``."""
    import timm

    return timm.list_pretrained(architecture(model_name) + ".*")


def known_models() -> list[str]:
    """Every architecture in timm's registry and every pretrained tag of one (``resnet18``, ``resnet18.a1_in1k``)."""
    import timm

    return timm.list_models() + timm.list_pretrained()


def matching_models(pattern: str = "*") -> list[str]:
    """timm's names that match a shell-style ``pattern``: architectures, or pretrained tags when it has a dot.

    A hub name (``hf-hub:…``) matches itself.

    >>> matching_models("convnext_atto*")
    ['convnext_atto', 'convnext_atto_ols', 'convnext_atto_rms']
    >>> matching_models("resnet18.a?_in1k")
    ['resnet18.a1_in1k', 'resnet18.a2_in1k', 'resnet18.a3_in1k']
    """
    if split_source(pattern)[0]:
        return [pattern]
    import timm

    return timm.list_pretrained(pattern) if "." in pattern else timm.list_models(pattern)


def listed_info(model_name: str) -> BackboneInfo:
    """:func:`backbone_info`, with a model timm cannot build at all listed as refused (and not kept in the cache)."""
    from mtdsl.errors import BackboneError

    try:
        return backbone_info(model_name)
    except BackboneError as error:
        return BackboneInfo(model_name, "", (), refusal=error.message)


@functools.lru_cache(maxsize=64)
def backbone_info(model_name: str) -> BackboneInfo:
    """Segment names, channels, strides and parameter counts: from the cache file, or read from timm and kept there.

    Raises:
        BackboneError: timm cannot build the model at all (e.g. a hub name whose
            ``config.json`` cannot be fetched); a model that builds but cannot be
            cut is no error here: its info says why (:attr:`BackboneInfo.refusal`).
    """
    cached = backbone_cache.read(model_name)
    if cached is not None:
        try:
            return BackboneInfo.from_record(cached)
        except (KeyError, TypeError, ValueError):
            pass  # a record of another shape: read it again
    info = read_backbone(model_name)
    backbone_cache.write(model_name, info.to_record())
    return info


def read_backbone(model_name: str) -> BackboneInfo:
    """:class:`BackboneInfo` from timm itself, built on the meta device (no memory, no compute).

    A model can be cut when timm's own ``features_only`` extractor runs its
    modules one after another (``FeatureListNet`` and the EfficientNet and
    MobileNet feature classes): then the same modules, grouped at the same
    taps, are the segments; so can timm's ``VisionTransformer``, ``Eva`` and
    ``Beit``, cut between blocks (:func:`token_cut`). Other models whose
    extractor calls ``forward_intermediates`` (XCiT, LeViT, Hiera, …) or hooks
    one forward pass, or whose stages do not run in order, run whole
    (:func:`whole_info`), as do vision transformers that cannot be cut between
    blocks; only a model timm cannot build with ``features_only`` is refused.
    """
    import timm

    model = _build(model_name, num_classes=0)
    arch = model.pretrained_cfg.get("architecture") or architecture(model_name)
    model_family = timm.models._registry._model_to_module.get(arch, "")
    layout = TOKENS if is_token_model(model) else str(getattr(model, "output_fmt", "NCHW")).rpartition(".")[2]
    data = DataConfig.from_pretrained_cfg(dict(model.pretrained_cfg))
    refusal = _refusal(model_name, model, layout)
    if refusal:
        return whole_info(model_name, model_family, data, refusal)
    if layout == TOKENS:  # the position embedding's grid is what it was built for, unless timm resamples it
        height, width = model.patch_embed.img_size
        fixed = not getattr(model, "dynamic_img_size", False)
        size = (3, int(height), int(width)) if fixed else data.input_size
        data = replace(data, fixed_input_size=fixed, input_size=size)
    infos = list(model.feature_info)
    if layout == TOKENS:
        groups = token_cut(model)
    else:
        parts_of = cut(model)
        problem = _dry_run(parts_of, layout, data, [int(info["num_chs"]) for info in model.feature_info])
        if problem.startswith(PRE_LOGITS):
            del parts_of[PRE_LOGITS]  # the layers after the last stage are no sequence: heads read the last stage
        elif problem:
            return whole_info(model_name, model_family, data, problem)
        groups = OrderedDict((segment, [name for name, _ in parts]) for segment, parts in parts_of.items())
    if PRE_LOGITS in groups:
        pooled = "global_pool" in groups[PRE_LOGITS]
        width = getattr(model, "head_hidden_size", None) or model.num_features
        if layout == TOKENS:
            width = model.num_features  # the final norm's width; a head_hidden_size is the head's
        infos.append({"num_chs": width, "reduction": infos[-1]["reduction"], "pooled": pooled})
    segments = tuple(
        SegmentInfo(
            name=segment,
            channels=int(info["num_chs"]),
            reduction=int(info["reduction"]),
            timm_modules=tuple(names),
            parameters=sum(_parameters(model, name) for name in names),
            pooled=bool(info.get("pooled", False)),
        )
        for (segment, names), info in zip(groups.items(), infos)
    )
    return BackboneInfo(model_name, model_family, segments, layout, "", data)


def whole_info(model_name: str, model_family: str, data: DataConfig, why: str) -> BackboneInfo:
    """A model that cannot be cut (``why``), run whole: segments at the taps of timm's ``features_only`` extractor.

    The first segment holds the whole extractor (all its parameters) and outputs
    its maps; every later segment hands them on and holds nothing. Names,
    channels and strides are the extractor's ``feature_info``; its outputs are
    checked on the meta device to be one 4-d map per tap with those channels
    (``NHWC`` ones are recorded as such and turned to ``NCHW``); an extractor
    that fails at a size other than the model's own marks it as taking that
    size only. A model timm cannot build with ``features_only`` is refused with
    timm's reason; one whose extractor outputs something else, or does not run
    on the meta device (where mtdsl reads shapes and counts FLOPs: Gemma 4's
    ``.item()``), with ``why`` and that.

    >>> info = whole_info("test_vit_relpos", "vision_transformer_relpos", DataConfig((3, 160, 160)), "")
    >>> info.whole, info.data.fixed_input_size, [(s.name, s.channels, s.parameters > 0) for s in info.segments]
    (True, True, [('stage1', 96, True), ('stage2', 96, False), ('stage3', 96, False)])
    """
    extractor, unbuildable = _features_only(model_name)
    if unbuildable:
        return BackboneInfo(model_name, model_family, (), refusal=unbuildable, data=data)
    infos = extractor.feature_info.get_dicts()
    channels = [int(info["num_chs"]) for info in infos]
    layout, problem = _whole_layout(extractor, data.input_size, channels)
    if problem:
        return BackboneInfo(model_name, model_family, (), refusal=f"{why or 'it cannot be cut'}, and it cannot "
                            f"run whole: {problem}", data=data)
    if not data.fixed_input_size:  # a model that runs at its own size only (a fixed position embedding) says so
        _, height, width = data.input_size
        if _whole_layout(extractor, (3, height + 32, width + 32), channels)[1]:
            data = replace(data, fixed_input_size=True)
    names = segment_names(len(infos), int(infos[0]["reduction"]))
    parts = tuple(name for name, _ in extractor.named_children())
    weights = sum(p.numel() for p in extractor.parameters())
    segments = tuple(
        SegmentInfo(name=segment, channels=channels[index], reduction=int(info["reduction"]),
                    timm_modules=parts if not index else (), parameters=weights if not index else 0)
        for index, (segment, info) in enumerate(zip(names, infos))
    )
    return BackboneInfo(model_name, model_family, segments, layout, "", data, whole=True)


def _whole_layout(extractor: Any, input_size: tuple[int, ...], channels: list[int]) -> tuple[str, str]:
    """The layout of an extractor's maps (``NCHW`` or ``NHWC``) from a meta-device run, and ``""``; or what is
    wrong with its outputs."""
    import torch

    try:
        maps = extractor(torch.empty(2, *input_size, device="meta"))
    except Exception as error:  # any failure to run is the reason
        size = f"{input_size[1]}x{input_size[2]}"
        first_line = (str(error).splitlines() or [""])[0]
        return "", (f"its features_only extractor fails on {size} images on the meta device, where mtdsl reads "
                    f"shapes and counts FLOPs ({type(error).__name__}: {first_line})")
    if not isinstance(maps, (list, tuple)) or len(maps) != len(channels):
        return "", f"its features_only extractor outputs a {type(maps).__name__}, not one map per tap"
    if any(not isinstance(x, torch.Tensor) or x.ndim != 4 for x in maps):
        return "", "its features_only extractor outputs something other than 4-d maps"
    if all(x.shape[1] == width for x, width in zip(maps, channels)):
        return "NCHW", ""
    if all(x.shape[3] == width for x, width in zip(maps, channels)):
        return "NHWC", ""
    found = [int(x.shape[1]) for x in maps]
    return "", f"its features_only extractor outputs {found} channels, not feature_info's {channels}"


def _dry_run(parts_of: OrderedDict[str, list[tuple[str, Any]]], layout: str, data: DataConfig,
             channels: list[int]) -> str:
    """Run the segments on the meta device (shapes only, no compute): ``""``, or which segment fails and how.

    timm's extractor takes the first element of a tap that returns a tuple and
    hands the tuple on, and some models keep head layers among their last
    modules; neither shows in the metadata. A segment must output one map with
    the channels ``feature_info`` states (``pre_logits``: any map).
    """
    import torch

    x: Any = torch.empty(2, *data.input_size, device="meta")  # two images: a batch norm on pooled maps needs them
    for index, (segment, parts) in enumerate(parts_of.items()):
        try:
            if layout == "NHWC" and index:
                x = x.permute(0, 2, 3, 1)
            for _, module in parts:
                x = module(x)
        except Exception as error:  # any failure to run is the reason the cut is refused
            return f"{segment} does not run as a sequence of its modules ({type(error).__name__})"
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            what = f"a {type(x).__name__}" if not isinstance(x, torch.Tensor) else f"a {x.ndim}-d tensor"
            return f"{segment} outputs {what}, not one map (timm's extractor picks from it)"
        if layout == "NHWC":
            x = x.permute(0, 3, 1, 2)
        if index < len(channels) and x.shape[1] != channels[index]:
            return f"{segment} outputs {x.shape[1]} channels, not feature_info's {channels[index]}"
    return ""


def _parameters(model: Any, name: str) -> int:
    """The weights of one part: a module's, or a bare parameter's (a ViT's ``pos_embed``; ``None`` in
    models without one, e.g. ``vitamin_xlarge_256``)."""
    if "." not in name and hasattr(model, name):
        part = getattr(model, name)
        if part is None:
            return 0
        if not hasattr(part, "parameters"):
            return int(part.numel())
    return sum(p.numel() for p in model.get_submodule(name).parameters())


def data_config(model_name: str) -> DataConfig:
    """timm's pretrained data config of ``model_name`` (tags and hub names too), read once and cached with the rest.

    >>> config = data_config("resnet18.a1_in1k")
    >>> config.interpolation, config.crop_pct, config.input_size
    ('bicubic', 0.95, (3, 224, 224))
    """
    return backbone_info(model_name).data


#: timm's feature extractors that do not run the model's modules in order, and why that stops a cut.
_NOT_SEQUENTIAL = {
    "FeatureGetterNet": "timm reads its feature maps with forward_intermediates (tokens reshaped to maps), "
    "not module by module",
    "FeatureHookNet": "timm reads its feature maps with hooks inside one forward pass, not module by module",
    "FeatureGraphNet": "timm reads its feature maps by tracing the forward pass with torch.fx, not module by module",
}


def _build(model_name: str, **kwargs: Any) -> Any:
    """The timm model on the meta device; a name timm cannot build becomes a :class:`~mtdsl.errors.BackboneError`."""
    import timm
    import torch

    try:
        with torch.device("meta"):
            return timm.create_model(model_name, pretrained=False, **kwargs)  # timm types it as nn.Module
    # timm and huggingface_hub fail in many ways (RuntimeError, OSError, ValueError, HTTP errors), with no common base.
    except Exception as error:
        raise _unbuildable(model_name, error) from None


def _unbuildable(model_name: str, error: Exception) -> Exception:
    from mtdsl.errors import BackboneError

    source, name = split_source(model_name)
    if source == "hf-hub":
        return BackboneError(
            f"timm cannot read the configuration of {model_name}: {type(error).__name__}: {error}",
            expected="a Hugging Face repository holding a timm model (config.json), reachable through "
            "huggingface_hub or already in its cache",
            hint=f"check the repository name; offline, download it once (HF_HUB_OFFLINE=1 then serves it from the "
            f"cache), set HF_ENDPOINT for a mirror, or name the timm architecture (e.g. '{name.rpartition('/')[2]}')",
        )
    return BackboneError(
        f"timm cannot build {model_name}: {type(error).__name__}: {error}",
        hint="`mtdsl backbones PATTERN` lists the models that can be cut into segments",
    )


def _features_only(model_name: str) -> tuple[Any, str]:
    """timm's ``features_only`` extractor of a model on the meta device, and ``""``; or ``None`` and why timm
    cannot build it."""
    import timm
    import torch

    try:
        with torch.device("meta"):
            return timm.create_model(model_name, pretrained=False, features_only=True), ""
    except Exception as error:  # any failure of timm's features_only: its message is the reason
        first_line = str(error).splitlines()[0]
        return None, f"timm cannot build it with features_only=True ({type(error).__name__}: {first_line})"


def _refusal(model_name: str, model: Any, layout: str) -> str:
    """Why ``model`` cannot be cut into segments, or ``""`` when it can."""
    if layout not in LAYOUTS:
        return f"its stages hold {layout} tensors, not maps"
    if not getattr(model, "feature_info", None):
        return "timm gives it no feature_info (no feature maps to cut at)"
    extractor, unbuildable = _features_only(model_name)
    if unbuildable:
        return unbuildable
    reason = _NOT_SEQUENTIAL.get(type(extractor).__name__)
    if reason and type(extractor).__name__ == "FeatureGetterNet" and is_token_model(model):
        return _token_refusal(model)  # "": cut between blocks, see token_cut
    if reason or layout == TOKENS:
        return reason or ""
    try:
        cut(model)
    except (IndexError, StopIteration):
        return "a feature tap of its feature_info is not among its modules in order"
    return ""
