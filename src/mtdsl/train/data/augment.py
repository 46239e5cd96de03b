"""Augmentation ops (:mod:`mtdsl.spec.augment`) built as ``torchvision.transforms.v2`` transforms, run from one seed.

Each op kind registers a builder under its spec key. :func:`seeded` runs a
pipeline with torch's default generator set to an item's seed and puts the
generator back afterwards, so an augmented image depends on ``(seed, index)``
alone (not on the worker, nor on the order items were asked for), and the
training loop's own draws (dropout, drop-path) are untouched: a resumed run
stays bit-identical.

>>> import torch
>>> from torchvision import tv_tensors
>>> from mtdsl.spec.augment import Flip
>>> flip = compose((Flip(p=1.0),), Canvas(size=None, fill=(0, 0, 0)))
>>> image = tv_tensors.Image(torch.arange(6, dtype=torch.uint8).view(1, 2, 3))
>>> with seeded(7):
...     flip(image)[0, 0].tolist()
[2, 1, 0]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from mtdsl.spec.augment import (
    AUGMENTS,
    AugmentConfig,
    AutoAugment,
    ColourJitter,
    Crop,
    Flip,
    RandAugment,
    ScaleJitter,
)
from mtdsl.spec.augment import VerticalFlip as VerticalFlipConfig
from mtdsl.spec.registry import Builders

__all__ = ["AUGMENT_BUILDERS", "Canvas", "compose", "seeded"]

#: Mask padding and the value uncovered mask pixels take: the segment tasks' ignore index.
MASK_FILL = 255


@dataclass(frozen=True)
class Canvas:
    """What an op needs to know of where it runs.

    Attributes:
        size: ``(height, width)`` a crop resizes to; ``None`` keeps each picture's own size
            (images with boxes or masks are letterboxed first, then augmented in place).
        fill: the padding colour, 0–255 per channel (the normalisation mean, so padding reads as zero).
        interpolation: how a crop resizes the picture (timm's, for pretrained weights).
    """

    size: tuple[int, int] | None
    fill: tuple[int, ...]
    interpolation: v2.InterpolationMode = v2.InterpolationMode.BILINEAR

    def fills(self) -> dict[type, Any]:
        """v2's per-type fill: the mean colour for images, the ignore index for masks."""
        return {tv_tensors.Image: list(self.fill), tv_tensors.Mask: MASK_FILL}


AUGMENT_BUILDERS: Builders[Callable[[Any, Canvas], v2.Transform]] = Builders(AUGMENTS)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw from torch's default generator seeded with ``seed`` inside the block; restore its state after.

    ``torch.default_generator.manual_seed`` costs a microsecond; ``torch.manual_seed``
    also reseeds every accelerator and costs a hundred times more per image.
    """
    generator = torch.default_generator
    state = generator.get_state()
    generator.manual_seed(int(seed) % 2**64)
    try:
        yield
    finally:
        generator.set_state(state)


def one_pixel_safe(kernel: Callable[..., torch.Tensor], pixels: torch.Tensor, size: Sequence[int],
                   **kwargs: Any) -> torch.Tensor:
    """``kernel(pixels, size=size, **kwargs)``, in float32 when a uint8 picture shrinks to 1x1.

    torch's antialiased uint8 resize fails an internal assert for a 1x1 output from a contiguous
    ``(3, H, W)`` tensor (torch 2.14); the float kernel computes the same average.
    """
    if pixels.dtype == torch.uint8 and tuple(size) == (1, 1):
        return kernel(pixels.float(), size=list(size), **kwargs).round_().clamp_(0, 255).to(torch.uint8)
    return kernel(pixels, size=list(size), **kwargs)


class ResizedCrop(v2.RandomResizedCrop):
    """``RandomResizedCrop`` whose region is never empty.

    When ten draws miss, torchvision falls back to the largest centred region of an aspect in
    ``ratio``, rounded to whole pixels: zero pixels wide for a 1-pixel-wide picture and a ratio
    range below 1 (an empty tensor that kills the loader worker). The region is kept at least a
    pixel a side and inside the picture.
    """

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        params = super().make_params(flat_inputs)
        height, width = v2.query_size(flat_inputs)
        crop_h, crop_w = min(max(1, params["height"]), height), min(max(1, params["width"]), width)
        return {"top": min(max(0, params["top"]), height - crop_h), "left": min(max(0, params["left"]), width - crop_w),
                "height": crop_h, "width": crop_w}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        size = params.get("size", self.size)
        assert size is not None, "a crop is made with its output size"
        if isinstance(inpt, tv_tensors.Image) or F.is_pure_tensor(inpt):
            box = {key: params[key] for key in ("top", "left", "height", "width")}
            out = one_pixel_safe(F.resized_crop, inpt.as_subclass(torch.Tensor), size, **box,
                                 interpolation=self.interpolation, antialias=self.antialias)
            return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.Image) else out
        return self._call_kernel(F.resized_crop, inpt, **{k: params[k] for k in ("top", "left", "height", "width")},
                                 size=list(size), interpolation=self.interpolation, antialias=self.antialias)


class ResizedCropInPlace(ResizedCrop):
    """:class:`ResizedCrop` whose output is the size of its input: a zoom into a random region."""

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {**super().make_params(flat_inputs), "size": list(v2.query_size(flat_inputs))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        box = {key: params[key] for key in ("top", "left", "height", "width")}
        if isinstance(inpt, tv_tensors.Mask):
            # v2 resizes masks with "nearest", which samples pixel corners and shifts a zoomed mask by up to a
            # source pixel against its boxes; "nearest-exact" samples centres, as the letterbox's own mask resize.
            cropped = F.crop(inpt.as_subclass(torch.Tensor), **box)
            resized = F.resize(cropped[None], params["size"], interpolation=v2.InterpolationMode.NEAREST_EXACT)[0]
            return tv_tensors.wrap(resized, like=inpt)
        return super().transform(inpt, params)


def _mirrored_points(points: tv_tensors.KeyPoints, axis: int) -> tv_tensors.KeyPoints:
    """``points`` mirrored along ``axis`` (0: x, 1: y) as continuous coordinates: ``x -> width - x``."""
    side = points.canvas_size[1 - axis]
    moved = points.as_subclass(torch.Tensor).clone()
    moved[..., axis] = side - moved[..., axis]
    return tv_tensors.wrap(moved, like=points)


class HorizontalFlip(v2.RandomHorizontalFlip):
    """``RandomHorizontalFlip`` that mirrors keypoints as continuous coordinates, as it mirrors boxes.

    torchvision mirrors a keypoint as a pixel index (``x -> width - 1 - x``) but a box's edges as
    coordinates (``x -> width - x``); mtdsl's points are coordinates, as its boxes are, so a
    point on a box's corner stays on it.
    """

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.KeyPoints):
            return _mirrored_points(inpt, 0)
        return super().transform(inpt, params)


class VerticalFlip(v2.RandomVerticalFlip):
    """``RandomVerticalFlip`` that mirrors keypoints as continuous coordinates (``y -> height - y``)."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.KeyPoints):
            return _mirrored_points(inpt, 1)
        return super().transform(inpt, params)


@AUGMENT_BUILDERS.register("flip")
def _flip(config: Flip, canvas: Canvas) -> v2.Transform:
    return HorizontalFlip(config.p)


@AUGMENT_BUILDERS.register("vflip")
def _vflip(config: VerticalFlipConfig, canvas: Canvas) -> v2.Transform:
    return VerticalFlip(config.p)


@AUGMENT_BUILDERS.register("crop")
def _crop(config: Crop, canvas: Canvas) -> v2.Transform:
    scale, ratio = tuple(config.scale), tuple(config.ratio)
    if canvas.size is None:
        return ResizedCropInPlace((1, 1), scale=scale, ratio=ratio, interpolation=canvas.interpolation, antialias=True)
    return ResizedCrop(list(canvas.size), scale=scale, ratio=ratio, interpolation=canvas.interpolation, antialias=True)


@AUGMENT_BUILDERS.register("scale_jitter")
def _scale_jitter(config: ScaleJitter, canvas: Canvas) -> v2.Transform:
    return v2.RandomAffine(degrees=0.0, scale=(config.min, config.max), fill=canvas.fills())


@AUGMENT_BUILDERS.register("colour_jitter")
def _colour_jitter(config: ColourJitter, canvas: Canvas) -> v2.Transform:
    return v2.ColorJitter(config.brightness, config.contrast, config.saturation, config.hue)


@AUGMENT_BUILDERS.register("randaugment")
def _randaugment(config: RandAugment, canvas: Canvas) -> v2.Transform:
    return v2.RandAugment(num_ops=config.ops, magnitude=config.magnitude, fill=canvas.fills())


@AUGMENT_BUILDERS.register("trivialaugment")
def _trivialaugment(config: AugmentConfig, canvas: Canvas) -> v2.Transform:
    return v2.TrivialAugmentWide(fill=canvas.fills())


@AUGMENT_BUILDERS.register("autoaugment")
def _autoaugment(config: AutoAugment, canvas: Canvas) -> v2.Transform:
    policy = {"imagenet": v2.AutoAugmentPolicy.IMAGENET, "cifar10": v2.AutoAugmentPolicy.CIFAR10,
              "svhn": v2.AutoAugmentPolicy.SVHN}[config.policy]
    return v2.AutoAugment(policy, fill=canvas.fills())


def compose(ops: Sequence[AugmentConfig], canvas: Canvas) -> v2.Compose:
    """One v2 transform running ``ops`` in order (an empty list: the identity)."""
    return v2.Compose([AUGMENT_BUILDERS.build(op, canvas) for op in ops])
