"""The neck registry: ``neck NAME = bifpn(trunk, …)`` and ``fpn(trunk, …)``.

A neck's config sits here beside its builder, under the same key, as heads do.
A neck reads the maps of one backbone (its first argument) at strides
``2**min_level …`` and returns one map per level ``min_level … max_level``.

``scale = d`` is EfficientDet's compound-scaling knob (:func:`efficientdet_scaling`):
it fills the BiFPN's ``channels``, ``repeats`` and fusion ``weighting`` for
EfficientDet-D``d``; values written next to it win.

>>> BiFPNConfig.model_validate({"backbone": "trunk", "scale": 2}).channels
112
>>> BiFPNConfig.model_validate({"backbone": "trunk"}).repeats  # D0 when nothing is said
3
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, model_validator
from torch import nn

from mtdsl.nn.scaling import efficientdet_scaling
from mtdsl.nn.necks.bifpn import BiFPN
from mtdsl.nn.module_call import ModuleCall
from mtdsl.nn.necks.fpn import FPN
from mtdsl.spec.fields import Channels, Depth, Flag
from mtdsl.spec.registry import Config, Registry

Level = Field(ge=1, le=10)


class NeckConfig(Config):
    """Base of neck configs: the backbone it reads and the pyramid levels it makes."""

    kind: str
    backbone: str
    min_level: int = Level
    max_level: int = Level

    positional = ("backbone",)

    @model_validator(mode="after")
    def _levels_in_order(self) -> NeckConfig:
        if self.min_level > self.max_level:
            raise ValueError(f"min_level ({self.min_level}) must not exceed max_level ({self.max_level})")
        return self

    @property
    def levels(self) -> list[int]:
        return list(range(self.min_level, self.max_level + 1))


NECK_CONFIGS: Registry[NeckConfig] = Registry("neck")
NeckCall = Callable[[Any, list[int], list[int]], ModuleCall]
NECK_CALLS: dict[str, NeckCall] = {}

_IMPORT = "from mtdsl.nn.necks import BiFPN, FPN"


def register_neck(kind: str) -> Callable[[NeckCall], NeckCall]:
    """Register ``call(config, in_channels, in_strides) -> ModuleCall``: the neck's constructor call."""

    def decorate(call: NeckCall) -> NeckCall:
        if kind not in NECK_CONFIGS:
            raise ValueError(f"neck '{kind}' has a builder but no registered config")
        NECK_CALLS[kind] = call
        return call

    return decorate


def build_neck(config: NeckConfig, in_channels: list[int], in_strides: list[int]) -> nn.Module:
    """The neck on maps of ``in_channels`` widths at ``in_strides`` (exactly the maps it reads)."""
    return NECK_CALLS[config.kind](config, in_channels, in_strides).build()


def neck_source(config: NeckConfig, in_channels: list[int], in_strides: list[int]) -> tuple[str, str]:
    """(import line, constructor expression) of a neck, for code generation."""
    return _IMPORT, NECK_CALLS[config.kind](config, in_channels, in_strides).source()


@NECK_CONFIGS.register("bifpn")
class BiFPNConfig(NeckConfig):
    """``bifpn(trunk, scale = 0, channels = 64, repeats = 3, min_level = 3, max_level = 7, separable = true, weighting = fastattn)``."""

    kind: Literal["bifpn"] = "bifpn"
    scale: int | None = Field(default=None, ge=0, le=7)
    channels: Channels = 64
    repeats: Depth = 3
    min_level: int = Field(default=3, ge=1, le=10)
    max_level: int = Field(default=7, ge=1, le=10)
    separable: Flag = True
    weighting: Literal["fastattn", "sum"] = "fastattn"

    @model_validator(mode="before")
    @classmethod
    def _fill_from_scale(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("scale") is not None and isinstance(values["scale"], int):
            if 0 <= values["scale"] <= 7:
                scaled = efficientdet_scaling(values["scale"])
                defaults = {"channels": scaled["channels"], "repeats": scaled["repeats"]}
                defaults["weighting"] = scaled["weight_method"]
                values = {**defaults, **values}
        return values


@NECK_CONFIGS.register("fpn")
class FPNConfig(NeckConfig):
    """``fpn(trunk, channels = 64, min_level = 3, max_level = 7, extra = conv)``: a plain top-down pyramid."""

    kind: Literal["fpn"] = "fpn"
    channels: Channels = 64
    min_level: int = Field(default=3, ge=1, le=10)
    max_level: int = Field(default=7, ge=1, le=10)
    extra: Literal["conv", "pool"] = "conv"


@register_neck("bifpn")
def bifpn_call(config: BiFPNConfig, in_channels: list[int], in_strides: list[int]) -> ModuleCall:
    return ModuleCall(BiFPN, (in_channels, in_strides), {
        "channels": config.channels, "repeats": config.repeats, "min_level": config.min_level,
        "max_level": config.max_level, "separable": config.separable, "weight_method": config.weighting,
    })


@register_neck("fpn")
def fpn_call(config: FPNConfig, in_channels: list[int], in_strides: list[int]) -> ModuleCall:
    return ModuleCall(FPN, (in_channels, in_strides), {
        "channels": config.channels, "min_level": config.min_level, "max_level": config.max_level,
        "extra": config.extra,
    })
