"""The train/eval transform of image-label tasks, on uint8 tensors with ``torchvision.transforms.v2``.

Training runs the dataset's augmentation ops (:mod:`mtdsl.spec.augment`; by
default a random resized crop and a flip) on the decoded picture, from the
item's seed alone (:func:`mtdsl.train.data.augment.seeded`), so an augmented
image depends on ``(index, seed)`` only: not on the worker that made it nor on
the order items were asked for. Whatever size the ops leave, the picture is
then fitted to the input (shorter side, centre crop: all evaluation does) and
normalised in one fused multiply-add.

>>> from PIL import Image
>>> transform = ImageTransform((32, 32), mean=(0.5,) * 3, std=(0.5,) * 3, train=False)
>>> transform(Image.new("RGB", (64, 48), "white"), seed=0).shape
torch.Size([3, 32, 32])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from mtdsl.spec.augment import DEFAULT_LABELS, AugmentConfig
from mtdsl.train.data.augment import Canvas, compose, one_pixel_safe, seeded
from mtdsl.train.data.resize import Resize

#: Pillow errors that mean "this file is not a readable image".
IMAGE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

Box = tuple[float, float, float, float]


#: Pillow's modes of 16-bit (and 32-bit integer) greyscale: a 16-bit PNG opens as ``I;16``, or ``I`` in older Pillows.
DEEP_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


def as_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, 16-bit greyscale scaled to 8 bit (``value / 257``, rounded).

    Pillow's ``convert("RGB")`` clips ``I`` and ``I;16`` levels at 255 instead of scaling
    them, so a 16-bit PNG would read almost all white. A mode ``I`` image is read as 16-bit
    levels (what a 16-bit PNG holds); 16-bit RGB PNGs already open as 8-bit ``RGB``.

    >>> import numpy as np
    >>> deep = Image.fromarray(np.array([[0, 257, 32896, 65535]], dtype=np.uint16))
    >>> np.asarray(as_rgb(deep))[0, :, 0].tolist()
    [0, 1, 128, 255]
    """
    if image.mode not in DEEP_MODES:
        return image.convert("RGB")
    levels = np.asarray(image).astype(np.int64)
    return Image.fromarray(np.clip((levels + 128) // 257, 0, 255).astype(np.uint8), "L").convert("RGB")


def box_inside(left: float, top: float, crop_w: float, crop_h: float, width: int, height: int) -> Box:
    """The ``crop_w`` x ``crop_h`` box at ``(left, top)``, moved and shrunk just enough to lie inside the image.

    The callers' arithmetic is exact in real numbers but not in floats: centring
    a crop as wide as a 211x320 image gives a left edge of -1.4e-14, which
    Pillow's ``resize(box=...)`` refuses ("box offset can't be negative").
    Every box this module hands to Pillow comes through here, so it always has
    ``0 <= left < right <= width`` and ``0 <= top < bottom <= height``
    (``crop_w`` and ``crop_h`` must be positive).

    >>> box_inside(-1.4e-14, 54.5, 211.0, 211.0, 211, 320)
    (0.0, 54.5, 211.0, 265.5)
    """
    crop_w, crop_h = min(crop_w, float(width)), min(crop_h, float(height))
    left = min(max(left, 0.0), width - crop_w)
    top = min(max(top, 0.0), height - crop_h)
    return (left, top, min(left + crop_w, float(width)), min(top + crop_h, float(height)))


def centre_box(width: int, height: int, size: tuple[int, int]) -> Box:
    """The centred region that, scaled to ``size`` (H, W), fills it: shorter side first, then a centre crop."""
    out_h, out_w = size
    scale = max(out_h / height, out_w / width)
    crop_w, crop_h = out_w / scale, out_h / scale
    return box_inside((width - crop_w) / 2, (height - crop_h) / 2, crop_w, crop_h, width, height)


def whole_pixels(box: Box) -> tuple[int, int, int, int]:
    """``box`` as whole pixels ``(top, left, height, width)``, at least one pixel a side (``box_inside``'s boxes)."""
    left, top, right, bottom = box
    x0, y0 = round(left), round(top)
    return y0, x0, max(1, round(bottom) - y0), max(1, round(right) - x0)


def pixels_of(image: Image.Image | torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` uint8 from a decoded tensor (kept as is) or an RGB ``PIL.Image``."""
    if isinstance(image, torch.Tensor):
        return image
    return torch.from_numpy(np.array(as_rgb(image), dtype=np.uint8)).permute(2, 0, 1)


@dataclass(frozen=True)
class ImageTransform:
    """Train: the augmentation ops, then fit; eval: fit (resize the shorter side + centre crop).

    Both end in a float32 ``(3, H, W)`` tensor normalised with ``mean``/``std``.

    Attributes:
        size: output (height, width).
        mean: per-channel mean in [0, 1] units (also the colour of padding an op uncovers).
        std: per-channel std in [0, 1] units.
        train: whether to augment.
        augment: the ops, in order (default: a random resized crop, area 0.5–1, then a flip).
        resize: the interpolation of every resize, and the centre share kept at evaluation
            (:func:`~mtdsl.train.data.resize.pretrained_resize`: timm's, for pretrained weights).
    """

    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: bool
    augment: tuple[AugmentConfig, ...] = DEFAULT_LABELS
    resize: Resize = Resize()

    def draft_size(self) -> int:
        """The smallest side a picture may be decoded at without losing detail for this transform.

        A crop of area fraction ``s`` and aspect up to 4/3 reads a region ``1/sqrt(s) * 4/3`` times smaller
        than the picture, so the decode must be that much larger than the output.
        """
        scales = [op.scale[0] for op in self.augment if op.kind == "crop"] if self.train else []  # type: ignore[attr-defined]
        grow = 1 / math.sqrt(min(scales)) * 4 / 3 if scales else 1.0
        return math.ceil(max(self.size) * grow)

    @cached_property
    def _augment(self) -> v2.Compose:
        return compose(self.augment, Canvas(self.size, tuple(round(255 * m) for m in self.mean), self.resize.mode))

    def __call__(self, image: Image.Image | torch.Tensor, seed: int) -> torch.Tensor:
        """``image`` (``(3, H, W)`` uint8, or an RGB ``PIL.Image``) → normalised ``(3, *size)`` float32."""
        pixels = pixels_of(image)
        if self.train and self.augment:
            with seeded(seed):
                pixels = self._augment(pixels)  # v2 takes a plain tensor for the image: no tv_tensor wrapping
        return self.normalise(self.fit(pixels))

    def fit(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(3, H, W)`` → ``(3, *size)``: the centred region of the output's aspect, resized (antialiased).

        At evaluation the region keeps ``resize.crop_pct`` of its side, as timm's eval transform
        (resize the shorter side to ``size / crop_pct``, then centre-crop ``size``).
        """
        height, width = pixels.shape[-2:]
        keep = 1.0 if self.train else self.resize.crop_pct
        if (height, width) == self.size and keep == 1.0:
            return pixels
        left, top, right, bottom = centre_box(width, height, self.size)
        crop_w, crop_h = (right - left) * keep, (bottom - top) * keep
        box = box_inside((width - crop_w) / 2, (height - crop_h) / 2, crop_w, crop_h, width, height)
        top_px, left_px, crop_h_px, crop_w_px = whole_pixels(box)
        return one_pixel_safe(F.resized_crop, pixels, self.size, top=top_px, left=left_px, height=crop_h_px,
                              width=crop_w_px, interpolation=self.resize.mode, antialias=True)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(3, H, W)`` uint8 → normalised float32 ``(3, H, W)``: ``(pixel / 255 - mean) / std``.

        One float copy, then a multiply and an add in place on it: ``ToDtype`` then ``Normalize``
        make more passes, and ``torch.addcmul`` with per-channel operands took four times as long as
        the two in-place passes on a 224-px image (benchmarks/data_loading.py).
        """
        values = pixels.to(torch.float32, memory_format=torch.contiguous_format, copy=True)  # never the caller's
        return values.mul_(self._scale).add_(self._shift)

    @cached_property
    def _scale(self) -> torch.Tensor:
        return (1.0 / (255.0 * torch.tensor(self.std, dtype=torch.float64))).float().view(-1, 1, 1)

    @cached_property
    def _shift(self) -> torch.Tensor:
        mean, std = torch.tensor(self.mean, dtype=torch.float64), torch.tensor(self.std, dtype=torch.float64)
        return (-mean / std).float().view(-1, 1, 1)
