"""The box-aware letterbox: an aspect-preserving resize and a seeded flip that move boxes and masks with the pixels.

Detect and segment tasks, and the image-label tasks trained in their batches, see
their images this way in training, evaluation and ``mtdsl predict``.

>>> from mtdsl.train.data.dense import synthetic_detection
>>> sample = synthetic_detection(3, 48, 0)
>>> Letterbox(32, (0.5,) * 3, (0.5,) * 3, train=False)(Image.fromarray(sample.image), 0, boxes=sample.boxes).boxes.shape
(1, 4)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from PIL import Image

from mtdsl.train.data.dense import IGNORE_INDEX
from mtdsl.train.data.transforms import ImageTransform, as_rgb

__all__ = ["Letterbox", "Letterboxed", "open_rgb"]

_NO_BOXES = np.zeros((0, 4), dtype=np.float32)


@dataclass(frozen=True)
class Letterboxed:
    """What :class:`Letterbox` makes of one image.

    Attributes:
        image: ``(3, S, S)`` float32, normalised.
        boxes: ``(K, 4)`` float32 in output pixels, the kept boxes only.
        keep: ``(G,)`` bool over the input boxes: which survived (index the classes with it).
        mask: ``(S, S)`` int64 when a mask came in, padding :data:`IGNORE_INDEX`; else ``None``.
        scale: ``(sx, sy)``, output pixels per input pixel (divide predictions by it to go back).
        flipped: whether the image was mirrored.
    """

    image: torch.Tensor
    boxes: np.ndarray
    keep: np.ndarray
    mask: torch.Tensor | None
    scale: tuple[float, float]
    flipped: bool


@dataclass(frozen=True)
class Letterbox:
    """Letterbox resize to a square, then (training only) a random horizontal flip.

    The image keeps its aspect ratio: its longer side becomes ``size``, and
    the rest of the square, at the bottom or right, is filled with the mean
    colour (zero after normalisation). The flip mirrors the resized image
    before padding, so the padding stays at the bottom/right. Boxes are
    scaled and mirrored with the pixels, clipped to the image, and dropped
    when narrower or shorter than ``min_size`` output pixels. A mask gets the
    same geometry with nearest-neighbour resizing and :data:`IGNORE_INDEX`
    padding. The flip is drawn from a :class:`torch.Generator` seeded with the
    item's seed, never from the global RNG.

    Attributes:
        size: output side in pixels.
        mean: per-channel mean in [0, 1] units (also the padding colour).
        std: per-channel std in [0, 1] units.
        train: whether to flip at random.
        flip: the probability of a flip when training.
        min_size: boxes whose clipped width or height is below this many output pixels are dropped.
    """

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: bool
    flip: float = 0.5
    min_size: float = 1.0

    @cached_property
    def _normaliser(self) -> ImageTransform:
        return ImageTransform((self.size, self.size), tuple(self.mean), tuple(self.std), train=False)

    def fitted(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) a ``width`` x ``height`` image takes inside the square."""
        scale = self.size / max(width, height)
        return max(1, min(self.size, round(width * scale))), max(1, min(self.size, round(height * scale)))

    def __call__(
        self,
        image: Image.Image,
        seed: int,
        boxes: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        original_size: tuple[int, int] | None = None,
    ) -> Letterboxed:
        """Transform one image with its boxes and mask.

        Args:
            image: RGB.
            seed: the item's seed (only the flip is random).
            boxes: ``(G, 4)`` ``(x0, y0, x1, y1)`` in the pixels of ``original_size``.
            mask: ``(H, W)`` uint8 class indices at ``original_size``.
            original_size: (width, height) the boxes and mask refer to, when
                ``image`` was decoded smaller (JPEG draft); default ``image.size``.
        """
        width, height = original_size or image.size
        new_w, new_h = self.fitted(width, height)
        flipped = False
        if self.train and self.flip > 0:
            generator = torch.Generator().manual_seed(int(seed))
            flipped = bool(torch.rand(1, generator=generator).item() < self.flip)

        if image.size != (new_w, new_h):
            image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
        if flipped:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        fill = tuple(round(255 * m) for m in self.mean)
        canvas = Image.new("RGB", (self.size, self.size), fill)  # type: ignore[arg-type]
        canvas.paste(image, (0, 0))

        sx, sy = new_w / width, new_h / height
        boxes = _NO_BOXES if boxes is None else np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        moved = boxes * np.array([sx, sy, sx, sy], dtype=np.float32)
        if flipped:
            moved = np.stack([new_w - moved[:, 2], moved[:, 1], new_w - moved[:, 0], moved[:, 3]], axis=1)
        moved = np.clip(moved, 0, np.array([new_w, new_h, new_w, new_h], dtype=np.float32))
        keep = ((moved[:, 2] - moved[:, 0]) >= self.min_size) & ((moved[:, 3] - moved[:, 1]) >= self.min_size)

        out_mask = None
        if mask is not None:
            out_mask = torch.from_numpy(self._mask(np.asarray(mask, dtype=np.uint8), new_w, new_h, flipped))
        return Letterboxed(
            image=self._normaliser.normalise(np.asarray(canvas)),
            boxes=np.ascontiguousarray(moved[keep], dtype=np.float32),
            keep=keep,
            mask=out_mask,
            scale=(sx, sy),
            flipped=flipped,
        )

    def place_mask(self, mask: np.ndarray, flipped: bool) -> torch.Tensor:
        """A mask at its image's full size through the geometry of that image's :class:`Letterboxed`.

        For a second mask of one image: ``flipped`` is the image's ``Letterboxed.flipped``.
        Returns ``(S, S)`` int64 with :data:`IGNORE_INDEX` padding.
        """
        height, width = mask.shape[:2]
        new_w, new_h = self.fitted(width, height)
        return torch.from_numpy(self._mask(np.asarray(mask, dtype=np.uint8), new_w, new_h, flipped))

    def _mask(self, mask: np.ndarray, new_w: int, new_h: int, flipped: bool) -> np.ndarray:
        if mask.ndim != 2:
            raise ValueError(f"a mask is (H, W) class indices, got shape {mask.shape}")
        picture = Image.fromarray(mask)
        if picture.size != (new_w, new_h):
            picture = picture.resize((new_w, new_h), Image.Resampling.NEAREST)
        if flipped:
            picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out = np.full((self.size, self.size), IGNORE_INDEX, dtype=np.int64)
        out[:new_h, :new_w] = np.asarray(picture)
        return out


def open_rgb(path: str, size: int) -> tuple[Image.Image, tuple[int, int]]:
    """The image as RGB, JPEG-decoded no smaller than needed, and its full (width, height)."""
    with Image.open(path) as image:
        original = image.size
        if image.format == "JPEG":
            image.draft("RGB", (size, size))
        return as_rgb(image), original
