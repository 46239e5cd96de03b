"""The neck builders: each neck kind's constructor call, under the key of its config.

The configs (``bifpn(trunk, …)``, ``fpn(trunk, …)``) live in
:mod:`mtdsl.spec.necks`; here each kind registers in :data:`NECK_BUILDERS`
one function ``call(config, in_channels, in_strides) -> ModuleCall``, so
building the module (:func:`build_neck`) and writing it into ``model.py``
(:func:`neck_source`) follow the same call.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mtdsl.nn.module_call import ModuleCall
from mtdsl.nn.necks.bifpn import BiFPN
from mtdsl.nn.necks.fpn import FPN
from mtdsl.spec.necks import NECK_CONFIGS, BiFPNConfig, FPNConfig, NeckConfig
from mtdsl.spec.registry import Builders

NeckCall = Callable[[NeckConfig, list[int], list[int]], ModuleCall]

NECK_BUILDERS: Builders[NeckCall] = Builders(NECK_CONFIGS)
register_neck = NECK_BUILDERS.register

_IMPORT = "from mtdsl.nn.necks import BiFPN, FPN"


def build_neck(config: NeckConfig, in_channels: list[int], in_strides: list[int]) -> nn.Module:
    """The neck on maps of ``in_channels`` widths at ``in_strides`` (exactly the maps it reads)."""
    return NECK_BUILDERS.build(config, in_channels, in_strides).build()


def neck_source(config: NeckConfig, in_channels: list[int], in_strides: list[int]) -> tuple[str, str]:
    """(import line, constructor expression) of a neck, for code generation."""
    call = NECK_BUILDERS.build(config, in_channels, in_strides)
    return call.imports, call.source()


@register_neck("bifpn")
def bifpn_call(config: BiFPNConfig, in_channels: list[int], in_strides: list[int]) -> ModuleCall:
    return ModuleCall(BiFPN, (in_channels, in_strides), {
        "channels": config.channels, "repeats": config.repeats, "min_level": config.min_level,
        "max_level": config.max_level, "separable": config.separable, "weight_method": config.weighting,
    }, imports=_IMPORT)


@register_neck("fpn")
def fpn_call(config: FPNConfig, in_channels: list[int], in_strides: list[int]) -> ModuleCall:
    return ModuleCall(FPN, (in_channels, in_strides), {
        "channels": config.channels, "min_level": config.min_level, "max_level": config.max_level,
        "extra": config.extra,
    }, imports=_IMPORT)
