"""The box-aware letterbox: an aspect-preserving resize, then augmentation ops that move boxes, masks and points
with pixels.

Detect and segment tasks, and the image-label tasks trained in their batches, see
their images this way in training, evaluation and ``mtdsl predict``.

>>> from mtdsl.train.data.box_mask_targets import synthetic_detection
>>> sample = synthetic_detection(3, 48, 0)
>>> Letterbox(32, (0.5,) * 3, (0.5,) * 3, train=False)(Image.fromarray(sample.image), 0, boxes=sample.boxes).boxes.shape
(1, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from mtdsl.spec.augment import AugmentConfig, Flip
from mtdsl.train.data.augment import Canvas, compose, one_pixel_safe, seeded
from mtdsl.train.data.box_mask_targets import IGNORE_INDEX
from mtdsl.train.data.decode import read_rgb
from mtdsl.train.data.transforms import ImageTransform, pixels_of

__all__ = ["Letterbox", "Letterboxed", "open_rgb"]

_NO_BOXES = np.zeros((0, 4), dtype=np.float32)
_NO_POINTS = np.zeros((0, 2), dtype=np.float32)
#: Two pairs of probe points, across x and across y, that tell whether the ops mirrored the picture (fractions
#: of its side): a mirror reverses a pair's order, and no other op does.
_PROBES = np.array([[0.25, 0.5], [0.75, 0.5], [0.5, 0.25], [0.5, 0.75]], dtype=np.float32)


@dataclass(frozen=True)
class Letterboxed:
    """What :class:`Letterbox` makes of one image.

    Attributes:
        image: ``(3, S, S)`` float32, normalised.
        boxes: ``(K, 4)`` float32 in output pixels, the kept boxes only.
        keep: ``(G,)`` bool over the input boxes: which survived (index the classes with it).
        mask: ``(S, S)`` int64 when a mask came in, padding :data:`IGNORE_INDEX`; else ``None``.
        masks: the same for each of ``masks=`` (other tasks' masks of the image), in order.
        scale: ``(sx, sy)``, output pixels per input pixel before augmentation (divide
            predictions by it to go back).
        points: ``(P, 2)`` float32 ``(x, y)`` in output pixels, every point given (none dropped: a
            point may have left the picture, see ``picture``).
        flipped: ``(horizontal, vertical)``: whether the ops mirrored the picture (named points then
            swap sides, :func:`~mtdsl.train.data.point_targets.flip_order`).
        picture: the ``(width, height)`` of the resized picture in the square's top-left corner.
    """

    image: torch.Tensor
    boxes: np.ndarray
    keep: np.ndarray
    mask: torch.Tensor | None
    scale: tuple[float, float]
    masks: tuple[torch.Tensor, ...] = ()
    points: np.ndarray = field(default_factory=lambda: _NO_POINTS)
    flipped: tuple[bool, bool] = (False, False)
    picture: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Letterbox:
    """Letterbox resize to a square, then (training only) the augmentation ops, then padding.

    The image keeps its aspect ratio: its longer side becomes ``size``. The ops
    (default: a horizontal flip with probability ``flip``) run on the resized
    picture, with its boxes and masks as ``tv_tensors``, so every op moves them
    with the pixels; then the rest of the square, at the bottom or right, is
    filled with the mean colour (zero after normalisation). Boxes are clipped to
    the picture and dropped when narrower or shorter than ``min_size`` output
    pixels. Masks are resized nearest-neighbour (pixel centres, as Pillow) and
    padded with :data:`IGNORE_INDEX`. The ops draw from the item's seed only
    (:func:`~mtdsl.train.data.augment.seeded`).

    Attributes:
        size: output side in pixels.
        mean: per-channel mean in [0, 1] units (also the padding colour).
        std: per-channel std in [0, 1] units.
        train: whether to augment.
        flip: the probability of a flip when training, when ``augment`` is not given.
        min_size: boxes whose clipped width or height is below this many output pixels are dropped.
        augment: the ops (:mod:`mtdsl.spec.augment`); ``None`` means ``[flip(p = flip)]``.
        squash: stretch the picture to the whole square instead (``resize = squash``): no padding,
            and ``scale`` differs between x and y.
    """

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: bool
    flip: float = 0.5
    min_size: float = 1.0
    augment: tuple[AugmentConfig, ...] | None = None
    squash: bool = False

    @cached_property
    def _normaliser(self) -> ImageTransform:
        return ImageTransform((self.size, self.size), tuple(self.mean), tuple(self.std), train=False)

    @cached_property
    def _fill(self) -> tuple[int, ...]:
        return tuple(round(255 * m) for m in self.mean)

    @cached_property
    def _augment(self) -> v2.Compose | None:
        ops = (Flip(p=self.flip),) if self.augment is None else self.augment
        if not self.train or not ops or ops == (Flip(p=0.0),):
            return None
        return compose(ops, Canvas(None, self._fill))

    def fitted(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) a ``width`` x ``height`` image takes inside the square (all of it when squashed)."""
        if self.squash:
            return self.size, self.size
        scale = self.size / max(width, height)
        return max(1, min(self.size, round(width * scale))), max(1, min(self.size, round(height * scale)))

    def __call__(
        self,
        image: Image.Image | torch.Tensor,
        seed: int,
        boxes: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        original_size: tuple[int, int] | None = None,
        masks: Sequence[np.ndarray] = (),
        points: np.ndarray | None = None,
    ) -> Letterboxed:
        """Transform one image with its boxes, masks and points.

        Args:
            image: ``(3, H, W)`` uint8, or an RGB ``PIL.Image``.
            seed: the item's seed.
            boxes: ``(G, 4)`` ``(x0, y0, x1, y1)`` in the pixels of ``original_size``.
            mask: ``(H, W)`` uint8 class indices at ``original_size``.
            original_size: (width, height) the boxes and masks refer to, when
                ``image`` was decoded smaller (JPEG draft); default the image's size.
            masks: more ``(H, W)`` masks of the image (other segment tasks'); they come back in ``masks``.
            points: ``(P, 2)`` ``(x, y)`` in the pixels of ``original_size``, continuous as boxes are.
        """
        pixels = pixels_of(image)
        width, height = original_size or (pixels.shape[-1], pixels.shape[-2])
        new_w, new_h = self.fitted(width, height)
        if tuple(pixels.shape[-2:]) != (new_h, new_w):
            pixels = one_pixel_safe(F.resize, pixels, (new_h, new_w), antialias=True)

        sx, sy = new_w / width, new_h / height
        given = ([] if mask is None else [mask]) + list(masks)
        limits = np.array([new_w, new_h, new_w, new_h], dtype=np.float32)
        boxed = _NO_BOXES if boxes is None else np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        moved = np.clip(boxed * np.array([sx, sy, sx, sy], dtype=np.float32), 0, limits)
        placed = [self._resized_mask(np.asarray(m, dtype=np.uint8), new_w, new_h) for m in given]
        picture_alone = boxes is None and not given and points is None  # an image-label task's letterbox
        points = _NO_POINTS if points is None else np.asarray(points, dtype=np.float32).reshape(-1, 2)
        spots = points * np.array([sx, sy], dtype=np.float32)
        flipped = (False, False)

        if self._augment is not None and picture_alone:
            with seeded(seed):  # the picture alone: the auto-augment family refuses even an empty box list
                pixels = self._augment(tv_tensors.Image(pixels)).as_subclass(torch.Tensor)
        elif self._augment is not None:
            sample = {
                "image": tv_tensors.Image(pixels),
                "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(moved), format="XYXY", canvas_size=(new_h, new_w)),
                "masks": [tv_tensors.Mask(m) for m in placed],
                "points": tv_tensors.KeyPoints(torch.from_numpy(np.concatenate([spots, _PROBES * [new_w, new_h]])),
                                               canvas_size=(new_h, new_w)),
            }
            with seeded(seed):
                sample = self._augment(sample)
            spots, flipped = _unprobed(sample["points"].as_subclass(torch.Tensor).numpy())
            pixels = sample["image"].as_subclass(torch.Tensor)
            placed = [m.as_subclass(torch.Tensor) for m in sample["masks"]]
            moved = np.clip(sample["boxes"].as_subclass(torch.Tensor).numpy(), 0, limits)
        keep = ((moved[:, 2] - moved[:, 0]) >= self.min_size) & ((moved[:, 3] - moved[:, 1]) >= self.min_size)

        canvas = torch.empty((3, self.size, self.size), dtype=torch.uint8)
        canvas[:] = torch.tensor(self._fill, dtype=torch.uint8).view(3, 1, 1)
        canvas[:, :new_h, :new_w] = pixels
        padded = tuple(self._padded(m) for m in placed)
        return Letterboxed(
            image=self._normaliser.normalise(canvas),
            boxes=np.ascontiguousarray(moved[keep], dtype=np.float32),
            keep=keep,
            mask=padded[0] if mask is not None else None,
            scale=(sx, sy),
            masks=padded[1:] if mask is not None else padded,
            points=np.ascontiguousarray(spots, dtype=np.float32),
            flipped=flipped,
            picture=(new_w, new_h),
        )

    def _resized_mask(self, mask: np.ndarray, new_w: int, new_h: int) -> torch.Tensor:
        if mask.ndim != 2:
            raise ValueError(f"a mask is (H, W) class indices, got shape {mask.shape}")
        values = torch.from_numpy(np.ascontiguousarray(mask))
        if values.shape == (new_h, new_w):
            return values
        # nearest-exact samples pixel centres, as Pillow's NEAREST does; plain "nearest" shifts by up to half a pixel.
        return torch.nn.functional.interpolate(values[None, None], size=(new_h, new_w), mode="nearest-exact")[0, 0]

    def _padded(self, mask: torch.Tensor) -> torch.Tensor:
        out = torch.full((self.size, self.size), IGNORE_INDEX, dtype=torch.int64)
        out[: mask.shape[0], : mask.shape[1]] = mask
        return out


def _unprobed(moved: np.ndarray) -> tuple[np.ndarray, tuple[bool, bool]]:
    """The moved points without the probes, and whether the ops mirrored the picture (left to right, top to bottom).

    Which ops ran is drawn inside the pipeline; the probes, a pair across each axis, say it
    from where they ended: a mirror reverses a pair's order, and no other op does.
    """
    points, probes = moved[: -len(_PROBES)].astype(np.float32), moved[-len(_PROBES):]
    return points, (bool(probes[0, 0] > probes[1, 0]), bool(probes[2, 1] > probes[3, 1]))


def open_rgb(path: str, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """The image as ``(3, H, W)`` uint8, upright, JPEG-decoded no smaller than needed, and its full (width, height)."""
    return read_rgb(path, draft=size)
