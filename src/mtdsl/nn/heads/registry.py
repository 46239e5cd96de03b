"""The head builders: each head kind's constructor call, under the key of its config.

The configs (what a spec may write) live in :mod:`mtdsl.spec.heads`; here
each kind registers in :data:`HEAD_BUILDERS` one function
``call(config, in_channels, num_outputs[, num_levels]) -> ModuleCall``, so
building the module (:func:`build_head`) and writing it into ``model.py``
(through :mod:`mtdsl.nn.plan`) follow the same call. Heads that read a pyramid
(``reads = "pyramid"``) also get ``num_levels``, the number of maps they read.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mtdsl.nn.module_call import ModuleCall
from mtdsl.spec.heads import HEAD_CONFIGS, HeadConfig, heads_for
from mtdsl.spec.registry import Builders

HeadCall = Callable[..., ModuleCall]

HEAD_BUILDERS: Builders[HeadCall] = Builders(HEAD_CONFIGS)
register_head = HEAD_BUILDERS.register


def head_call(config: HeadConfig, in_channels: int, num_outputs: int, num_levels: int = 1) -> ModuleCall:
    """The constructor call of a head; ``num_levels`` reaches only heads that read a pyramid."""
    levels = {"num_levels": num_levels} if config.reads == "pyramid" else {}
    return HEAD_BUILDERS.build(config, in_channels=in_channels, num_outputs=num_outputs, **levels)


def build_head(config: HeadConfig, in_channels: int, num_outputs: int, num_levels: int = 1) -> nn.Module:
    """The head module; ``num_levels`` is the number of pyramid maps a ``reads = "pyramid"`` head gets."""
    return head_call(config, in_channels, num_outputs, num_levels).build()


__all__ = ["HEAD_BUILDERS", "HEAD_CONFIGS", "HeadConfig", "build_head", "head_call", "heads_for",
           "register_head"]
