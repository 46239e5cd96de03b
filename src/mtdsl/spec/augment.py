"""Training augmentation a dataset can declare: ``augment = [flip(), crop(scale = [0.5, 1]), …]``.

Each op is a kind registered in :data:`AUGMENTS`; ``mtdsl.train.data.augment``
builds a ``torchvision.transforms.v2`` transform for each under the same key.
The ops run in the order written, on training images only; validation, test
and ``mtdsl predict`` see the plain resize. Boxes, masks and keypoints move
with the pixels (torchvision's ``tv_tensors``).

>>> augment_config({"kind": "flip", "args": [0.25]}).p
0.25
>>> [op.kind for op in DEFAULT_LABELS]
['crop', 'flip']
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from mtdsl.spec.registry import Config, Registry

__all__ = ["AUGMENTS", "DEFAULT_DENSE", "DEFAULT_LABELS", "DEFAULT_SYNTHETIC_LABELS", "AugmentConfig", "augment_config"]

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
#: An area fraction of a crop.
AreaFraction = Annotated[float, Field(gt=0.0, le=1.0)]
#: An aspect ratio (width / height) of a crop.
Aspect = Annotated[float, Field(gt=0.0, le=100.0)]
#: A zoom factor of scale jitter.
Zoom = Annotated[float, Field(gt=0.0, le=10.0)]
#: How far colour jitter may move brightness, contrast or saturation (1 ± the value).
ColourAmount = Annotated[float, Field(ge=0.0, le=1.0)]


class AugmentConfig(Config):
    """Base of every op. ``image_only`` ops move pixels without moving boxes or masks (torchvision's
    auto-augment family refuses them), so they serve image-label data only."""

    kind: str

    image_only: ClassVar[bool] = False


AUGMENTS: Registry[AugmentConfig] = Registry("augmentation op")


def _ordered_pair(value: list[float], what: str) -> list[float]:
    if value[0] > value[1]:
        raise ValueError(f"{what} is [low, high], low first: write [{value[1]:g}, {value[0]:g}]")
    return value


@AUGMENTS.register("flip")
class Flip(AugmentConfig):
    """Mirror left to right with probability ``p``. Leave it out where left and right differ (text, lanes, hands)."""

    kind: Literal["flip"] = "flip"
    p: Probability = 0.5

    positional = ("p",)


@AUGMENTS.register("vflip")
class VerticalFlip(AugmentConfig):
    """Mirror top to bottom with probability ``p`` (aerial and microscope images)."""

    kind: Literal["vflip"] = "vflip"
    p: Probability = 0.5

    positional = ("p",)


@AUGMENTS.register("crop")
class Crop(AugmentConfig):
    """A random resized crop: a region of ``scale`` of the area and ``ratio`` aspect, resized to the input.

    On images with boxes or masks the crop keeps the letterboxed picture's size,
    and boxes are clipped to it (those left thinner than a pixel are dropped).
    """

    kind: Literal["crop"] = "crop"
    scale: Annotated[list[AreaFraction], Field(min_length=2, max_length=2)] = Field(default_factory=lambda: [0.5, 1.0])
    ratio: Annotated[list[Aspect], Field(min_length=2, max_length=2)] = Field(
        default_factory=lambda: [3 / 4, 4 / 3]
    )

    positional = ("scale", "ratio")

    @field_validator("scale")
    @classmethod
    def _scale_order(cls, value: list[float]) -> list[float]:
        return _ordered_pair(value, "scale")

    @field_validator("ratio")
    @classmethod
    def _ratio_order(cls, value: list[float]) -> list[float]:
        return _ordered_pair(value, "ratio")


@AUGMENTS.register("scale_jitter")
class ScaleJitter(AugmentConfig):
    """Zoom about the centre by a factor drawn from ``[min, max]``; what a zoom-out uncovers is padding."""

    kind: Literal["scale_jitter"] = "scale_jitter"
    min: Zoom = 0.75
    max: Zoom = 1.25

    positional = ("min", "max")

    @model_validator(mode="after")
    def _order(self) -> ScaleJitter:
        if self.min > self.max:
            raise ValueError(f"min is at most max: write scale_jitter({self.max:g}, {self.min:g})")
        return self


@AUGMENTS.register("colour_jitter")
class ColourJitter(AugmentConfig):
    """Random brightness, contrast and saturation in ``1 ± amount``, and hue shifted by up to ``hue`` turns."""

    kind: Literal["colour_jitter"] = "colour_jitter"
    brightness: ColourAmount = 0.4
    contrast: ColourAmount = 0.4
    saturation: ColourAmount = 0.4
    hue: Annotated[float, Field(ge=0.0, le=0.5)] = 0.0

    positional = ("brightness", "contrast", "saturation", "hue")


@AUGMENTS.register("randaugment")
class RandAugment(AugmentConfig):
    """RandAugment (Cubuk et al. 2020): ``ops`` random ops per image at strength ``magnitude`` of 30."""

    image_only = True

    kind: Literal["randaugment"] = "randaugment"
    ops: Annotated[int, Field(gt=0, le=10)] = 2
    magnitude: Annotated[int, Field(ge=0, le=30)] = 9

    positional = ("ops", "magnitude")


@AUGMENTS.register("trivialaugment")
class TrivialAugment(AugmentConfig):
    """TrivialAugment Wide (Müller & Hutter 2021): one random op at a random strength; nothing to tune."""

    image_only = True

    kind: Literal["trivialaugment"] = "trivialaugment"


@AUGMENTS.register("autoaugment")
class AutoAugment(AugmentConfig):
    """AutoAugment's learned policy (Cubuk et al. 2019) for ``imagenet``, ``cifar10`` or ``svhn``."""

    image_only = True

    kind: Literal["autoaugment"] = "autoaugment"
    policy: Literal["imagenet", "cifar10", "svhn"] = "imagenet"

    positional = ("policy",)


#: Without ``augment``, image-label datasets get a random resized crop and a flip (timm's and torchvision's recipe).
DEFAULT_LABELS: tuple[AugmentConfig, ...] = (Crop(), Flip())
#: The synthetic shapes' crop is mild, so ``large`` still describes what the model sees.
DEFAULT_SYNTHETIC_LABELS: tuple[AugmentConfig, ...] = (Crop(scale=[0.8, 1.0], ratio=[0.9, 1.1]), Flip())
#: Without ``augment``, images with boxes or masks are flipped only.
DEFAULT_DENSE: tuple[AugmentConfig, ...] = (Flip(),)


def augment_config(value: dict[str, Any]) -> AugmentConfig:
    """An op from its lowered call (``{"kind": "flip", "args": [0.25]}``); for code and tests, not specs."""
    config = AUGMENTS.get(value["kind"])
    fields = dict(zip(config.positional, value.get("args", [])))
    fields.update({key: item for key, item in value.items() if key != "args"})
    return config.model_validate(fields)
