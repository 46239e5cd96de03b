"""What timm says about a backbone: its segments ``stem``, ``stage1`` … ``stageN``, their channels, strides and sizes.

A segment ends at each of timm's feature taps (``feature_info``), so segment
``k`` outputs the ``k``-th feature map and its channels and stride come from
timm's metadata, never from a dummy forward pass. For ResNets the segments
are ``act1 | layer1 | … | layer4``; for EfficientNets ``blocks.0 | blocks.1 |
blocks.2 | blocks.3-4 | blocks.5-6``. These are the model's *stages*.

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
from dataclasses import asdict, dataclass
from typing import Any

from mtdsl.graph import backbone_cache

SUPPORTED_FAMILIES = ("resnet", "efficientnet", "mobilenetv3", "test")

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
class BackboneInfo:
    model: str
    family: str
    segments: tuple[SegmentInfo, ...]

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
        return cls(record["model"], record["family"], segments)


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


def family(model_name: str) -> str:
    """The timm module that defines a model, e.g. ``resnet`` for ``resnet101`` (``""`` for no timm model)."""
    cached = backbone_cache.read(model_name)
    if cached is not None:
        return cached["family"]
    import timm

    return timm.models._registry._model_to_module.get(model_name, "")


def is_known_model(model_name: str) -> bool:
    if backbone_cache.read(model_name) is not None:
        return True
    import timm

    return timm.is_model(model_name)


def known_models() -> list[str]:
    import timm

    return timm.list_models()


@functools.lru_cache(maxsize=64)
def backbone_info(model_name: str) -> BackboneInfo:
    """Segment names, channels, strides and parameter counts: from the cache file, or read from timm and kept there."""
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
    """:class:`BackboneInfo` from timm itself, built on the meta device (no memory, no compute)."""
    import timm
    import torch

    with torch.device("meta"):
        model: Any = timm.create_model(model_name, pretrained=False, num_classes=0)  # timm types it as nn.Module
    infos = list(model.feature_info)
    segments_of_model = cut(model)
    if PRE_LOGITS in segments_of_model:
        pooled = any(name == "global_pool" for name, _ in segments_of_model[PRE_LOGITS])
        width = getattr(model, "head_hidden_size", None) or model.num_features
        infos.append({"num_chs": width, "reduction": infos[-1]["reduction"], "pooled": pooled})
    segments = tuple(
        SegmentInfo(
            name=segment,
            channels=int(info["num_chs"]),
            reduction=int(info["reduction"]),
            timm_modules=tuple(name for name, _ in parts),
            parameters=sum(p.numel() for _, module in parts for p in module.parameters()),
            pooled=bool(info.get("pooled", False)),
        )
        for (segment, parts), info in zip(segments_of_model.items(), infos)
    )
    return BackboneInfo(model_name, timm.models._registry._model_to_module.get(model_name, ""), segments)
