"""Classification heads for classify, binary and multi-label tasks (thesis Fig. 6.3).

``linear(pool = avg+max)`` pools the feature map (average, max, or both
concatenated, as the thesis' 14-head model does) and applies one linear layer.
``mlp([512, 256], dropout = 0.2)`` adds hidden layers before it. Their configs
live in :mod:`mtdsl.spec.heads`.
"""

from __future__ import annotations

import torch
from timm.layers import SelectAdaptivePool2d
from torch import nn

from mtdsl.nn.heads.registry import register_head
from mtdsl.nn.module_call import ModuleCall
from mtdsl.spec.heads import LinearHeadConfig, MlpHeadConfig

_TIMM_POOL = {"avg": "avg", "max": "max", "avg+max": "catavgmax"}


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


@register_head("linear")
def linear_call(config: LinearHeadConfig, in_channels: int, num_outputs: int) -> ModuleCall:
    return ModuleCall.of(
        ClassificationHead, in_channels=in_channels, num_outputs=num_outputs, pool=config.pool, dropout=config.dropout
    )


@register_head("mlp")
def mlp_call(config: MlpHeadConfig, in_channels: int, num_outputs: int) -> ModuleCall:
    return ModuleCall.of(
        ClassificationHead, in_channels=in_channels, num_outputs=num_outputs, pool=config.pool,
        hidden=tuple(config.hidden), dropout=config.dropout,
    )
