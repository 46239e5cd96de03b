"""The head registry: a config kind and its module builder share one key.

``HEAD_CONFIGS`` holds the pydantic config of each head kind (what a spec may
write); ``HEAD_BUILDERS`` holds the function that builds the ``nn.Module``.
A head declares which task kinds it serves and what it reads: one feature map
(``"map"``) or a feature pyramid (``"pyramid"``, for detection and
segmentation heads on a neck).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

from torch import nn

from mtdsl.nn.module_call import ModuleCall
from mtdsl.spec.registry import Config, Registry

Reads = Literal["map", "pyramid"]


class HeadConfig(Config):
    """Base of head configs."""

    kind: str
    task_kinds: ClassVar[frozenset[str]] = frozenset()
    reads: ClassVar[Reads] = "map"


HeadBuilder = Callable[..., nn.Module]
HeadSource = Callable[..., str]

HEAD_CONFIGS: Registry[HeadConfig] = Registry("head")
HEAD_BUILDERS: dict[str, HeadBuilder] = {}
HEAD_SOURCES: dict[str, tuple[str, HeadSource]] = {}


def register_head(kind: str, *, source: HeadSource, imports: str) -> Callable[[HeadBuilder], HeadBuilder]:
    """Register the builder of head ``kind``: ``builder(config, in_channels, num_outputs) -> nn.Module``.

    Heads that read a pyramid also get ``num_levels``, the number of maps they read.
    ``source`` takes the same arguments and returns the Python expression that builds the
    same module in generated ``model.py`` files; ``imports`` is the import line it needs.
    """

    def decorate(builder: HeadBuilder) -> HeadBuilder:
        if kind not in HEAD_CONFIGS:
            raise ValueError(f"head '{kind}' has a builder but no registered config")
        HEAD_BUILDERS[kind] = builder
        HEAD_SOURCES[kind] = (imports, source)
        return builder

    return decorate


def register_head_call(kind: str, *, imports: str) -> Callable[[Callable[..., ModuleCall]], Callable[..., ModuleCall]]:
    """Register head ``kind`` from one function returning its constructor call: builder and source both follow it."""

    def decorate(call: Callable[..., ModuleCall]) -> Callable[..., ModuleCall]:
        register_head(kind, source=lambda *a, **k: call(*a, **k).source(), imports=imports)(
            lambda *a, **k: call(*a, **k).build()
        )
        return call

    return decorate


def _level_arguments(config: HeadConfig, num_levels: int) -> dict[str, int]:
    return {"num_levels": num_levels} if config.reads == "pyramid" else {}


def head_source(config: HeadConfig, in_channels: int, num_outputs: int, num_levels: int = 1) -> tuple[str, str]:
    """(import line, constructor expression) of a head, for code generation."""
    imports, source = HEAD_SOURCES[config.kind]
    return imports, source(config, in_channels, num_outputs, **_level_arguments(config, num_levels))


def heads_for(task_kind: str) -> list[str]:
    """Head kinds that can serve a task kind, in registration order (the first is the default)."""
    return [kind for kind in HEAD_CONFIGS.kinds() if task_kind in HEAD_CONFIGS.get(kind).task_kinds]


def build_head(config: HeadConfig, in_channels: int, num_outputs: int, num_levels: int = 1) -> nn.Module:
    """The head module; ``num_levels`` is the number of pyramid maps a ``reads = "pyramid"`` head gets."""
    return HEAD_BUILDERS[config.kind](
        config, in_channels=in_channels, num_outputs=num_outputs, **_level_arguments(config, num_levels)
    )
