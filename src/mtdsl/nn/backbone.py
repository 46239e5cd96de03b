"""timm backbones cut into named segments: ``stem``, ``stage1`` … ``stageN``.

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

>>> info = backbone_info("test_resnet")
>>> [(s.name, s.channels, s.reduction) for s in info.segments][:2]
[('stem', 32, 2), ('stage1', 32, 4)]
>>> [(s.name, s.channels) for s in backbone_info("test_efficientnet").segments][-2:]
[('stage4', 64), ('pre_logits', 256)]
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass

import timm
import torch
from torch import nn

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


def family(model_name: str) -> str:
    """The timm module that defines a model, e.g. ``resnet`` for ``resnet101``."""
    return timm.models._registry._model_to_module.get(model_name, "")  # noqa: SLF001  (no public accessor)


def segment_names(count: int, first_reduction: int) -> list[str]:
    if first_reduction <= 2:
        return ["stem"] + [f"stage{i}" for i in range(1, count)]
    return [f"stage{i}" for i in range(1, count + 1)]


def _ordered_modules(model: nn.Module, taps: list[str]) -> list[tuple[str, nn.Module]]:
    """The model's modules in execution order, flattened just enough to reach every tap."""

    def expand(prefix: str, module: nn.Module) -> list[tuple[str, nn.Module]]:
        result = []
        for name, child in module.named_children():
            qualified = f"{prefix}{name}"
            if any(tap.startswith(qualified + ".") for tap in taps):
                result += expand(qualified + ".", child)
            else:
                result.append((qualified, child))
        return result

    return expand("", model)


def _cut(model: nn.Module) -> OrderedDict[str, list[tuple[str, nn.Module]]]:
    infos = model.feature_info
    taps = [info["module"] for info in infos]
    names = segment_names(len(taps), infos[0]["reduction"])
    segments: OrderedDict[str, list[tuple[str, nn.Module]]] = OrderedDict((n, []) for n in names)
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


def _pre_logits(model: nn.Module, rest: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
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


def create_timm_model(model_name: str, **kwargs) -> nn.Module:
    return timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)


def segments_of(model: nn.Module) -> nn.ModuleDict:
    """Cut a full timm model into an ``nn.ModuleDict`` of ``nn.Sequential`` segments."""
    return nn.ModuleDict(
        {
            segment: nn.Sequential(OrderedDict((name.replace(".", "_"), module) for name, module in parts))
            for segment, parts in _cut(model).items()
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


@functools.lru_cache(maxsize=64)
def backbone_info(model_name: str) -> BackboneInfo:
    """Segment names, channels, strides and parameter counts, read on the meta device (no memory, no compute)."""
    with torch.device("meta"):
        model = create_timm_model(model_name)
    infos = list(model.feature_info)
    cut = _cut(model)
    if PRE_LOGITS in cut:
        pooled = any(name == "global_pool" for name, _ in cut[PRE_LOGITS])
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
        for (segment, parts), info in zip(cut.items(), infos)
    )
    return BackboneInfo(model_name, family(model_name), segments)


def is_known_model(model_name: str) -> bool:
    return timm.is_model(model_name)


def known_models() -> list[str]:
    return timm.list_models()
