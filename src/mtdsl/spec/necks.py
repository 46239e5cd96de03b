"""Neck configs: ``neck NAME = bifpn(trunk, …)``, ``fpn(trunk, …)`` and ``simple_pyramid(trunk, …)``, and which
backbone maps a neck reads.

A neck kind's config is registered here in :data:`NECK_CONFIGS`; the module
that implements it registers its constructor under the same key in
:mod:`mtdsl.nn.necks`. A neck reads the maps of one backbone (its first
argument) at strides ``2**min_level …`` (:func:`pyramid_inputs`) and returns
one map per level ``min_level … max_level``; ``simple_pyramid`` reads only the
backbone's last map, for a plain vision transformer whose maps all share one
stride (:meth:`NeckConfig.input_indices`).

``scale = d`` is EfficientDet's compound-scaling knob (:func:`efficientdet_scaling`):
it fills the BiFPN's ``channels``, ``repeats`` and fusion ``weighting`` for
EfficientDet-D``d``; values written next to it win.

>>> BiFPNConfig.model_validate({"backbone": "trunk", "scale": 2}).channels
112
>>> BiFPNConfig.model_validate({"backbone": "trunk"}).repeats  # D0 when nothing is said
3
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from mtdsl.spec.fields import Channels, Depth, Flag
from mtdsl.spec.registry import Config, Registry
from mtdsl.spec.scaling import efficientdet_scaling

Level = Field(ge=1, le=10)


class NeckConfig(Config):
    """Base of neck configs: the backbone it reads and the pyramid levels it makes."""

    kind: str
    backbone: str
    min_level: int = Level

    if TYPE_CHECKING:  # every kind has a width; each declares its own field (and its place in dumps)
        channels: int
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

    def input_indices(self, in_strides: list[int]) -> list[int]:
        """Which of the backbone's maps (at ``in_strides``, in order) the neck reads: those at ``2**min_level …``."""
        return pyramid_inputs(in_strides, self.min_level, self.max_level)


NECK_CONFIGS: Registry[NeckConfig] = Registry("neck")


@NECK_CONFIGS.register("bifpn")
class BiFPNConfig(NeckConfig):
    """``bifpn(trunk, scale = 0, channels = 64, repeats = 3, min_level = 3, max_level = 7, separable = true, weighting = fastattn)``."""  # noqa: E501

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


@NECK_CONFIGS.register("simple_pyramid")
class SimplePyramidConfig(NeckConfig):
    """``simple_pyramid(trunk, channels = 64, min_level = 3, max_level = 6)``: ViTDet's pyramid from one map.

    It reads the backbone's last map (a plain ViT's last block, at its patch stride) and
    makes each level from it alone: transposed convolutions up, max-pooling down
    (Li et al. 2022, "Exploring Plain Vision Transformer Backbones for Object Detection").
    """

    kind: Literal["simple_pyramid"] = "simple_pyramid"
    channels: Channels = 64
    min_level: int = Field(default=3, ge=1, le=10)
    max_level: int = Field(default=6, ge=1, le=10)

    def input_indices(self, in_strides: list[int]) -> list[int]:
        """The last map only, whatever its stride: every level is made from it."""
        check_levels(self.min_level, self.max_level)
        return [len(in_strides) - 1]


def check_levels(min_level: int, max_level: int) -> None:
    """Raise ``ValueError`` unless ``1 <= min_level <= max_level``."""
    if not 1 <= min_level <= max_level:
        raise ValueError(
            f"pyramid levels must satisfy 1 <= min_level <= max_level, got min_level={min_level}, "
            f"max_level={max_level}; EfficientDet uses min_level=3, max_level=7"
        )


def pyramid_inputs(in_strides: list[int], min_level: int, max_level: int) -> list[int]:
    """Indices of the backbone maps that feed levels ``min_level …`` (as many as exist up to ``max_level``).

    Level ``l`` reads the map with stride ``2**l`` (the deepest one, if several share
    it). The maps must cover ``min_level`` and be contiguous from there; the neck
    synthesises the levels above the last one by downsampling.

    >>> pyramid_inputs([2, 4, 8, 16, 32], 3, 7)
    [2, 3, 4]
    >>> pyramid_inputs([2, 4, 8, 16, 32], 5, 7)
    [4]
    """
    check_levels(min_level, max_level)
    by_stride = {stride: i for i, stride in enumerate(in_strides)}
    if 2**min_level not in by_stride:
        usable = sorted(s.bit_length() - 1 for s in by_stride if s > 0 and s & (s - 1) == 0)
        hint = f"use min_level in {usable}" if usable else "use a backbone with power-of-two strides"
        raise ValueError(
            f"min_level={min_level} needs a backbone feature map at stride {2**min_level}, but the backbone's maps "
            f"have strides {list(in_strides)}; {hint}, or tap a backbone that reaches stride {2**min_level}"
        )
    indices = []
    for level in range(min_level, max_level + 1):
        if 2**level not in by_stride:
            break
        indices.append(by_stride[2**level])
    return indices
