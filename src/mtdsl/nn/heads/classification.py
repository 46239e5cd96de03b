"""Classification heads for classify, binary and multi-label tasks (thesis Fig. 6.3).

``linear(pool = avg+max)`` pools the feature map (average, max, or both
concatenated, as the thesis' 14-head model does) and applies one linear layer.
``mlp([512, 256], dropout = 0.2)`` adds hidden layers before it.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator
from timm.layers import SelectAdaptivePool2d
from torch import nn

from mtdsl.codegen.literal import literal
from mtdsl.nn.heads.registry import HEAD_CONFIGS, HeadConfig, register_head
from mtdsl.spec.fields import MAX_HIDDEN_LAYERS, Fraction, Hidden

Pool = Literal["avg", "max", "avg+max"]

_TIMM_POOL = {"avg": "avg", "max": "max", "avg+max": "catavgmax"}

CLASSIFYING = frozenset({"classify", "binary", "multilabel"})


@HEAD_CONFIGS.register("linear")
class LinearHeadConfig(HeadConfig):
    kind: Literal["linear"] = "linear"
    pool: Pool = "avg"
    dropout: Fraction = 0.0

    task_kinds = CLASSIFYING


@HEAD_CONFIGS.register("mlp")
class MlpHeadConfig(HeadConfig):
    kind: Literal["mlp"] = "mlp"
    hidden: list[Hidden] = Field(max_length=MAX_HIDDEN_LAYERS)
    pool: Pool = "avg"
    dropout: Fraction = 0.0

    positional = ("hidden",)
    task_kinds = CLASSIFYING

    @field_validator("hidden", mode="before")
    @classmethod
    def _one_layer_as_list(cls, value: object) -> object:
        return [value] if isinstance(value, int) else value


class ClassificationHead(nn.Module):
    """Pool → (Linear → ReLU → Dropout)* → Dropout → Linear.

    Args:
        in_channels: channels of the feature map it reads.
        num_outputs: logits per image (classes, 1 for binary, labels for multi-label).
        pool: ``avg``, ``max`` or ``avg+max`` (concatenated, doubling the features).
        hidden: widths of hidden layers; empty for a single linear layer.
        dropout: dropout probability before each linear layer after the first.

    Shapes:
        ``(N, in_channels, H, W) -> (N, num_outputs)``
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        pool: str = "avg",
        hidden: tuple[int, ...] = (),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.pool = SelectAdaptivePool2d(pool_type=_TIMM_POOL[pool], flatten=True)
        width = in_channels * self.pool.feat_mult()
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        if dropout and not hidden:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(width, num_outputs))
        self.classifier = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(features))


_IMPORT = "from mtdsl.nn.heads import ClassificationHead"


def _linear_source(config: LinearHeadConfig, in_channels: int, num_outputs: int) -> str:
    return (
        f"ClassificationHead({literal(in_channels)}, {literal(num_outputs)}, pool={literal(config.pool)}, "
        f"dropout={literal(config.dropout)})"
    )


def _mlp_source(config: MlpHeadConfig, in_channels: int, num_outputs: int) -> str:
    return (
        f"ClassificationHead({literal(in_channels)}, {literal(num_outputs)}, pool={literal(config.pool)}, "
        f"hidden={literal(tuple(config.hidden))}, dropout={literal(config.dropout)})"
    )


@register_head("linear", source=_linear_source, imports=_IMPORT)
def build_linear(config: LinearHeadConfig, in_channels: int, num_outputs: int) -> nn.Module:
    return ClassificationHead(in_channels, num_outputs, pool=config.pool, dropout=config.dropout)


@register_head("mlp", source=_mlp_source, imports=_IMPORT)
def build_mlp(config: MlpHeadConfig, in_channels: int, num_outputs: int) -> nn.Module:
    return ClassificationHead(
        in_channels, num_outputs, pool=config.pool, hidden=tuple(config.hidden), dropout=config.dropout
    )
