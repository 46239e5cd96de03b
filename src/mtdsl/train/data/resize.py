"""How a backbone's pretrained weights saw pictures: their normalisation, interpolation and evaluation crop.

All of it is timm's pretrained config, read from the backbone's record
(:func:`mtdsl.graph.backbones.data_config`: the cache or the table shipped with
mtdsl), so ``mtdsl compile`` writes ``NORMALIZATION`` and ``RESIZE`` into
``train.py`` without importing torch or timm.

>>> normalization("resnet18")
((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
>>> pretrained_resize("resnet10t", "imagenet"), pretrained_resize("resnet10t", "none")
(Resize(interpolation='bicubic', crop_pct=0.875), Resize(interpolation='bilinear', crop_pct=1.0))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mtdsl.errors import MtdslError
from mtdsl.graph.backbones import DataConfig, data_config

if TYPE_CHECKING:
    from torchvision.transforms.v2 import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The interpolations a resize can take from timm's pretrained configs (others, e.g. ``random``, read as bilinear).
INTERPOLATIONS = ("bilinear", "bicubic")


@dataclass(frozen=True)
class Resize:
    """How pictures are resized to the input: the interpolation, and the share of the shorter side kept at eval.

    timm's pretrained configs carry both (``interpolation``, ``crop_pct``): a
    pretrained model sees at evaluation the centre ``crop_pct`` of the picture,
    resized the way its weights were trained. Without pretrained weights mtdsl
    keeps the whole shorter side, bilinear.

    Attributes:
        interpolation: ``bilinear`` or ``bicubic`` (antialiased either way).
        crop_pct: the evaluation crop's side over the shorter side's, in (0, 1].
    """

    interpolation: str = "bilinear"
    crop_pct: float = 1.0

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation is one of {', '.join(INTERPOLATIONS)}, not {self.interpolation!r}")
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct is in (0, 1], not {self.crop_pct}")

    @property
    def mode(self) -> InterpolationMode:
        from torchvision.transforms.v2 import InterpolationMode

        return InterpolationMode(self.interpolation)


def _pretrained_config(model_name: str) -> DataConfig | None:
    try:
        return data_config(model_name)
    except MtdslError:  # no model timm can build: the defaults
        return None


def normalization(model_name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std of ``model_name``'s pretrained config in timm (ImageNet's when it has none)."""
    config = _pretrained_config(model_name)
    if config is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(config.mean), tuple(config.std)


def pretrained_resize(model_name: str, pretrained: str) -> Resize:
    """timm's ``interpolation`` and ``crop_pct`` for ``model_name`` when it loads weights; :class:`Resize` () if not."""
    config = _pretrained_config(model_name) if pretrained != "none" else None
    if config is None:
        return Resize()
    interpolation = config.interpolation if config.interpolation in INTERPOLATIONS else "bilinear"
    crop_pct = float(config.crop_pct) if config.crop_pct and 0 < config.crop_pct <= 1 else 1.0
    return Resize(interpolation, crop_pct)
