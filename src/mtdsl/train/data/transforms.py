"""Image loading and the train/eval transforms, with randomness from one seed only.

Every random choice (crop box, flip) is drawn from a local
:class:`torch.Generator` seeded per item, never from the global RNG, so an
augmented image depends on ``(index, seed)`` alone: not on the worker that
made it nor on the order items were asked for. Cropping and resizing happen in
one Pillow ``resize(box=...)`` call, which keeps the per-image cost low on CPU.

>>> from PIL import Image
>>> transform = ImageTransform((32, 32), mean=(0.5,) * 3, std=(0.5,) * 3, train=False)
>>> transform(Image.new("RGB", (64, 48), "white"), seed=0).shape
torch.Size([3, 32, 32])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image

#: Pillow errors that mean "this file is not a readable image".
IMAGE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Box = tuple[float, float, float, float]


def normalization(model_name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std of ``model_name``'s default pretrained config in timm (ImageNet's when it has none).

    Reads timm's registry only: no model is built and nothing is downloaded.

    >>> normalization("resnet18")
    ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    """
    from timm.models import get_pretrained_cfg

    try:
        config = get_pretrained_cfg(model_name)
    except (RuntimeError, KeyError, ValueError):
        config = None
    if config is None or config.mean is None or config.std is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(float(m) for m in config.mean), tuple(float(s) for s in config.std)


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


def load_image(path: str | Path, draft: tuple[int, int] | None = None) -> Image.Image:
    """Open ``path`` as RGB; raises one of :data:`IMAGE_ERRORS` when it cannot be read.

    ``draft`` (width, height) lets JPEG decoding shrink by a power of two while
    staying at least that large, which saves most of the decode time for photos
    much bigger than the model input.
    """
    with Image.open(path) as image:
        if draft is not None and image.format == "JPEG":
            image.draft("RGB", draft)
        return as_rgb(image)


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


def random_box(
    width: int,
    height: int,
    generator: torch.Generator,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Box:
    """A RandomResizedCrop box (area fraction in ``scale``, aspect in ``ratio``) drawn from ``generator``.

    Follows torchvision's ``RandomResizedCrop.get_params``: ten tries, then the
    largest centred crop inside the ratio range.
    """
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        draws = torch.rand(4, generator=generator).tolist()
        target_area = area * (scale[0] + (scale[1] - scale[0]) * draws[0])
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * draws[1])
        crop_w = math.sqrt(target_area * aspect)
        crop_h = math.sqrt(target_area / aspect)
        if 0 < crop_w <= width and 0 < crop_h <= height:
            left = (width - crop_w) * draws[2]
            top = (height - crop_h) * draws[3]
            return box_inside(left, top, crop_w, crop_h, width, height)
    in_ratio = width / height
    crop_w, crop_h = float(width), float(height)
    if in_ratio < ratio[0]:
        crop_h = width / ratio[0]
    elif in_ratio > ratio[1]:
        crop_w = height * ratio[1]
    return box_inside((width - crop_w) / 2, (height - crop_h) / 2, crop_w, crop_h, width, height)


@dataclass(frozen=True)
class ImageTransform:
    """Train: random resized crop + horizontal flip; eval: resize the shorter side + centre crop.

    Both end in a float32 ``(3, H, W)`` tensor normalised with ``mean``/``std``.

    Attributes:
        size: output (height, width).
        mean: per-channel mean in [0, 1] units.
        std: per-channel std in [0, 1] units.
        train: whether to augment.
        scale: area range of the random crop (training only).
        ratio: aspect-ratio range of the random crop (training only).
    """

    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: bool
    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def draft_size(self) -> tuple[int, int]:
        """The smallest decode size (width, height) that loses no detail for this transform."""
        height, width = self.size
        grow = 1 / math.sqrt(self.scale[0]) * 4 / 3 if self.train else 1.0
        return (math.ceil(width * grow), math.ceil(height * grow))

    def __call__(self, image: Image.Image, seed: int) -> torch.Tensor:
        width, height = image.size
        flip = False
        if self.train:
            generator = torch.Generator().manual_seed(seed)
            box = random_box(width, height, generator, self.scale, self.ratio)
            flip = bool(torch.rand(1, generator=generator).item() < 0.5)
        else:
            box = centre_box(width, height, self.size)
        out_h, out_w = self.size
        if box != (0.0, 0.0, float(width), float(height)) or (out_w, out_h) != (width, height):
            image = image.resize((out_w, out_h), Image.Resampling.BILINEAR, box=box)
        if flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return self.normalise(np.asarray(image))

    def normalise(self, pixels: np.ndarray) -> torch.Tensor:
        """``(H, W, 3)`` uint8 → normalised float32 ``(3, H, W)``: ``(pixel / 255 - mean) / std``.

        Two passes over contiguous memory (a channels-first float copy, then one fused
        multiply-add) instead of four over a permuted view: a third of one worker's time
        went here (benchmarks/data_loading.py).
        """
        channels_first = torch.from_numpy(np.array(pixels, dtype=np.uint8)).permute(2, 0, 1)  # a writable copy
        tensor = channels_first.to(torch.float32, memory_format=torch.contiguous_format)
        return torch.addcmul(self._shift, tensor, self._scale)

    @cached_property
    def _scale(self) -> torch.Tensor:
        return (1.0 / (255.0 * torch.tensor(self.std, dtype=torch.float64))).float().view(-1, 1, 1)

    @cached_property
    def _shift(self) -> torch.Tensor:
        mean, std = torch.tensor(self.mean, dtype=torch.float64), torch.tensor(self.std, dtype=torch.float64)
        return (-mean / std).float().view(-1, 1, 1)
