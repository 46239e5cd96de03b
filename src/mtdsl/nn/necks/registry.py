"""The neck builders: each neck kind's constructor call, under the key of its config.

The configs (``bifpn(trunk, …)``, ``fpn(trunk, …)``, ``simple_pyramid(trunk, …)``) live in
:mod:`mtdsl.spec.necks`; here each kind registers in :data:`NECK_BUILDERS`
one function ``call(config, in_channels, in_strides) -> ModuleCall``, so
building the module (:func:`build_neck`) and writing it into ``model.py``
(through :mod:`mtdsl.nn.plan`) follow the same call.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mtdsl.nn.module_call import ModuleCall
from mtdsl.nn.necks.bifpn import BiFPN
from mtdsl.nn.necks.fpn import FPN
from mtdsl.nn.necks.simple_pyramid import SimplePyramid
from mtdsl.spec.necks import NECK_CONFIGS, BiFPNConfig, FPNConfig, NeckConfig, SimplePyramidConfig
from mtdsl.spec.registry import Builders

NeckCall = Callable[[NeckConfig, list[int], list[int]], ModuleCall]

NECK_BUILDERS: Builders[NeckCall] = Builders(NECK_CONFIGS)
register_neck = NECK_BUILDERS.register

def neck_call(config: NeckConfig, in_channels: list[int], in_strides: list[int]) -> ModuleCall:
    """The constructor call of the neck on maps of ``in_channels`` widths at ``in_strides`` (only the maps it reads)."""
    return NECK_BUILDERS.build(config, in_channels, in_strides)


def build_neck(config: NeckConfig, in_channels: list[int], in_strides: list[int]) -> nn.Module:
    return neck_call(config, in_channels, in_strides).build()


@register_neck("bifpn")
def bifpn_call(config: BiFPNConfig, in_channels: list[int], in_strides: list[int]) -> ModuleCall:
    return ModuleCall.of(
        BiFPN, in_channels, in_strides, channels=config.channels, repeats=config.repeats,
        min_level=config.min_level, max_level=config.max_level, separable=config.separable,
        weight_method=config.weighting,
    )


@register_neck("fpn")
def fpn_call(config: FPNConfig, in_channels: list[int], in_strides: list[int]) -> ModuleCall:
    return ModuleCall.of(
        FPN, in_channels, in_strides, channels=config.channels, min_level=config.min_level,
        max_level=config.max_level, extra=config.extra,
    )


@register_neck("simple_pyramid")
def simple_pyramid_call(config: SimplePyramidConfig, in_channels: list[int], in_strides: list[int]) -> ModuleCall:
    return ModuleCall.of(
        SimplePyramid, in_channels, in_strides, channels=config.channels, min_level=config.min_level,
        max_level=config.max_level,
    )
