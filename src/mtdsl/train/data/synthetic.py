"""Coloured shapes on a noisy background, generated from ``(index, size, seed)``.

Nothing is stored: every sample is drawn again from a random generator seeded
with ``[seed, index]``, so the same triple gives the same bytes on every
machine and in every worker. The labels are drawn first, so
:func:`synthetic_labels` reads them without drawing the image.

>>> sample = synthetic_sample(3, size=64, seed=0)
>>> sample.image.shape, sample.image.dtype.name, sample.mask.shape
((64, 64, 3), 'uint8', (64, 64))
>>> (SHAPES[sample.shape], COLOURS[sample.colour], sample.large) == synthetic_labels(3, 0).named()
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue")

#: The label fields a task can learn (``label = colour``); ``None`` marks a yes/no field.
SYNTHETIC_FIELDS: dict[str, tuple[str, ...] | None] = {"shape": SHAPES, "colour": COLOURS, "large": None}

#: A shape is ``large`` when its half-extent exceeds this fraction of the image side.
LARGE_THRESHOLD = 0.22
_SMALL_EXTENT = (0.12, 0.19)
_LARGE_EXTENT = (0.25, 0.36)

# Saturated colours on a grey background, so a tiny CNN separates them in an epoch or two.
_RGB = np.array([[215, 35, 35], [35, 190, 45], [40, 60, 225]], dtype=np.int16)
_BACKGROUND = (70, 150)
_NOISE = 18


@dataclass(frozen=True)
class SyntheticLabels:
    """The labels of one synthetic image, as indices into :data:`SHAPES` and :data:`COLOURS`."""

    shape: int
    colour: int
    large: int

    def named(self) -> tuple[str, str, int]:
        return SHAPES[self.shape], COLOURS[self.colour], self.large

    def field(self, name: str) -> int:
        """The value of one of :data:`SYNTHETIC_FIELDS`."""
        return int(getattr(self, name))


@dataclass(frozen=True)
class SyntheticSample:
    """One generated image with its labels, box and mask.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        shape: index into :data:`SHAPES`.
        colour: index into :data:`COLOURS`.
        large: 1 when the shape's half-extent is above ``LARGE_THRESHOLD * size``.
        box: ``(x0, y0, x1, y1)`` in pixels, ``x1``/``y1`` exclusive, tight around the mask.
        mask: ``(H, W)`` uint8, 0 on the background and ``1 + shape`` on the shape.
    """

    image: np.ndarray
    shape: int
    colour: int
    large: int
    box: tuple[float, float, float, float]
    mask: np.ndarray


def _generator(index: int, seed: int) -> np.random.Generator:
    if index < 0 or seed < 0:
        raise ValueError(f"synthetic index and seed must be >= 0, got index={index}, seed={seed}")
    return np.random.default_rng([seed, index])


def _draw_labels(rng: np.random.Generator) -> SyntheticLabels:
    shape, colour, large = rng.integers(0, [len(SHAPES), len(COLOURS), 2])
    return SyntheticLabels(int(shape), int(colour), int(large))


def synthetic_labels(index: int, seed: int) -> SyntheticLabels:
    """The labels of sample ``index`` without drawing its image (a few microseconds)."""
    return _draw_labels(_generator(index, seed))


def _shape_mask(shape: int, size: int, centre: tuple[float, float], extent: float) -> np.ndarray:
    """Boolean ``(size, size)`` mask of a shape whose half-extent is ``extent`` pixels."""
    cx, cy = centre
    ys, xs = np.ogrid[:size, :size]
    dx, dy = xs + 0.5 - cx, ys + 0.5 - cy
    if SHAPES[shape] == "circle":
        return dx * dx + dy * dy <= extent * extent
    if SHAPES[shape] == "square":
        return (np.abs(dx) <= extent) & (np.abs(dy) <= extent)
    # An upright triangle: apex at the top, base along the bottom of the box.
    return (dy <= extent) & (np.abs(dx) <= (dy + extent) / 2)


def synthetic_sample(index: int, size: int, seed: int) -> SyntheticSample:
    """Draw sample ``index`` of a ``size`` x ``size`` synthetic dataset with ``seed``.

    Args:
        index: the sample's position in the dataset, ``>= 0``.
        size: width and height in pixels (at least 16 to keep small shapes visible).
        seed: the dataset's seed.

    Returns:
        The image, its labels, the shape's box and its mask.
    """
    if size < 16:
        raise ValueError(f"synthetic images need size >= 16 pixels, got {size}")
    rng = _generator(index, seed)
    labels = _draw_labels(rng)
    low, high = _LARGE_EXTENT if labels.large else _SMALL_EXTENT
    extent = rng.uniform(low, high) * size
    cx, cy = rng.uniform(extent + 1, size - extent - 1, size=2)
    grey = rng.integers(*_BACKGROUND)
    noise = rng.integers(-_NOISE, _NOISE + 1, size=(size, size, 3), dtype=np.int16)

    inside = _shape_mask(labels.shape, size, (cx, cy), extent)
    image = noise + np.where(inside[..., None], _RGB[labels.colour], np.int16(grey))
    ys, xs = np.nonzero(inside)
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    mask = inside.astype(np.uint8) * np.uint8(1 + labels.shape)
    return SyntheticSample(
        image=np.clip(image, 0, 255).astype(np.uint8),
        shape=labels.shape,
        colour=labels.colour,
        large=labels.large,
        box=box,
        mask=mask,
    )
