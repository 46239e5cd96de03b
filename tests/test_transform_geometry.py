"""Properties of every image transform's geometry, over image sizes from 1 to 2000 px a side.

A crop box that leaves the image by a rounding error kills a loader worker
(Pillow: "box offset can't be negative"), and a box that drifts off its pixels
teaches a detector the wrong place, so these hold for all sizes, not a few.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from mtdsl.spec.augment import Crop, Flip
from mtdsl.train.data.box_mask_targets import IGNORE_INDEX
from mtdsl.train.data.letterbox import Letterbox, open_rgb
from mtdsl.train.data.transforms import ImageTransform, Resize, centre_box, whole_pixels

SIDES = st.integers(min_value=1, max_value=2000)
OUTPUT_SIDES = st.integers(min_value=1, max_value=512)
SEEDS = st.integers(min_value=0, max_value=2**31 - 1)
#: Area fractions and aspect ranges of a random resized crop, including timm's and the synthetic data's.
SCALES = st.tuples(st.floats(0.01, 1.0), st.floats(0.01, 1.0)).map(sorted).map(tuple)
RATIOS = st.tuples(st.floats(0.1, 10.0), st.floats(0.1, 10.0)).map(sorted).map(tuple)
#: Sized so the file runs in a few seconds on one core: box arithmetic is cheap, resizing images is not.
MANY = settings(max_examples=300, deadline=None)
FEW = settings(max_examples=40, deadline=None)

ZERO_MEAN = (0.0, 0.0, 0.0)
UNIT_STD = (1.0, 1.0, 1.0)


def assert_inside(box: tuple[float, float, float, float], width: int, height: int) -> None:
    left, top, right, bottom = box
    assert 0 <= left < right <= width, (box, width, height)
    assert 0 <= top < bottom <= height, (box, width, height)


def assert_pillow_crops(box: tuple[float, float, float, float], width: int, height: int, size: tuple[int, int]):
    """Pillow itself accepts the box (it raises on a box a ulp outside the image)."""
    out_h, out_w = size
    resized = Image.new("L", (width, height)).resize((out_w, out_h), Image.Resampling.BILINEAR, box=box)
    assert resized.size == (out_w, out_h)


@MANY
@given(width=SIDES, height=SIDES, out_h=OUTPUT_SIDES, out_w=OUTPUT_SIDES)
@example(width=211, height=320, out_h=160, out_w=160)  # a flowers102 image whose left edge was -1.4e-14
@example(width=320, height=211, out_h=160, out_w=160)
def test_centre_box_lies_inside_the_image(width, height, out_h, out_w):
    box = centre_box(width, height, (out_h, out_w))
    assert_inside(box, width, height)
    assert_pillow_crops(box, width, height, (out_h, out_w))
    left, top, right, bottom = box
    # It is centred and has the output's aspect ratio, up to the clamping of a rounding error.
    assert left + right == pytest.approx(width, abs=1e-6)
    assert top + bottom == pytest.approx(height, abs=1e-6)
    assert (right - left) * out_h == pytest.approx((bottom - top) * out_w, rel=1e-6)


@MANY
@given(width=SIDES, height=SIDES, out_h=OUTPUT_SIDES, out_w=OUTPUT_SIDES)
def test_centre_box_in_whole_pixels_lies_inside_the_image(width, height, out_h, out_w):
    top, left, crop_h, crop_w = whole_pixels(centre_box(width, height, (out_h, out_w)))
    assert 0 <= top and top + crop_h <= height and crop_h >= 1, (top, crop_h, height)
    assert 0 <= left and left + crop_w <= width and crop_w >= 1, (left, crop_w, width)


@FEW
@given(width=SIDES, height=SIDES, out_h=OUTPUT_SIDES, out_w=OUTPUT_SIDES, train=st.booleans(), seed=SEEDS,
       scale=SCALES, ratio=RATIOS, resize=st.builds(Resize, st.sampled_from(["bilinear", "bicubic"]),
                                                     st.floats(0.05, 1.0)))
@example(width=211, height=320, out_h=160, out_w=160, train=False, seed=0, scale=(0.5, 1.0), ratio=(0.75, 4 / 3),
         resize=Resize())
# torch's antialiased uint8 resize asserts on a 1x1 output (torch 2.14): mtdsl resizes that one in float
@example(width=16, height=13, out_h=1, out_w=1, train=False, seed=0, scale=(0.5, 1.0), ratio=(0.75, 1.0),
         resize=Resize())
@example(width=16, height=13, out_h=1, out_w=1, train=True, seed=0, scale=(0.5, 1.0), ratio=(0.75, 1.0),
         resize=Resize())
# torchvision's fallback crop of a 1-pixel picture with a ratio range below 1 is 0 pixels wide
@example(width=1, height=1, out_h=1, out_w=1, train=True, seed=0, scale=(0.5, 0.5), ratio=(0.5, 0.5), resize=Resize())
@example(width=1, height=300, out_h=9, out_w=4, train=True, seed=0, scale=(0.01, 0.01), ratio=(5.0, 9.0),
         resize=Resize())
def test_image_transform_makes_exactly_the_output_size(width, height, out_h, out_w, train, seed, scale, ratio, resize):
    augment = (Crop(scale=list(scale), ratio=list(ratio)), Flip())
    transform = ImageTransform((out_h, out_w), ZERO_MEAN, UNIT_STD, train=train, augment=augment, resize=resize)
    image = transform(Image.new("RGB", (width, height), (200, 100, 50)), seed=seed)
    assert image.shape == (3, out_h, out_w)
    # A plain image stays plain: the crop never reaches outside it (Pillow would pad with black).
    assert torch.allclose(image, torch.tensor([200, 100, 50]).view(3, 1, 1) / 255, atol=1e-6)


def _rectangle(width: int, height: int, fractions: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """A pixel rectangle ``(x0, y0, x1, y1)`` (x1, y1 exclusive) at fractions of the image, at least a pixel a side."""
    fx0, fy0, fw, fh = fractions
    x0, y0 = int(fx0 * (width - 1)), int(fy0 * (height - 1))
    x1 = min(width, x0 + max(1, round(fw * width)))
    y1 = min(height, y0 + max(1, round(fh * height)))
    return x0, y0, x1, y1


def _bounds(on: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box ``(x0, y0, x1, y1)`` (x1, y1 exclusive) of the True pixels."""
    ys, xs = np.nonzero(on)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


FRACTIONS = st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0.05, 1), st.floats(0.05, 1))


@FEW
@given(
    width=SIDES,
    height=SIDES,
    size=st.integers(min_value=16, max_value=320),
    fractions=FRACTIONS,
    flipped=st.booleans(),
    jpeg=st.booleans(),
)
@example(width=211, height=320, size=160, fractions=(0.0, 0.0, 1.0, 1.0), flipped=False, jpeg=False)
@example(width=1280, height=700, size=160, fractions=(0.1, 0.2, 0.3, 0.4), flipped=True, jpeg=True)  # drafted at 1/4
def test_letterbox_keeps_box_mask_and_pixels_together(tmp_path_factory, width, height, size, fractions, flipped, jpeg):
    x0, y0, x1, y1 = _rectangle(width, height, fractions)
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    picture = Image.new("RGB", (width, height), "black")
    ImageDraw.Draw(picture).rectangle((x0, y0, x1 - 1, y1 - 1), fill="white")
    path = tmp_path_factory.mktemp("letterbox") / ("image.jpg" if jpeg else "image.bmp")
    picture.save(path, quality=95)
    # open_rgb decodes a JPEG smaller when it can; boxes and masks stay in the full size's pixels.
    decoded, original = open_rgb(str(path), size)
    assert original == (width, height)

    letterbox = Letterbox(size, ZERO_MEAN, UNIT_STD, train=True, flip=1.0 if flipped else 0.0)
    out = letterbox(decoded, seed=3, boxes=np.array([[x0, y0, x1, y1]]), mask=mask, original_size=original)

    assert out.image.shape == (3, size, size)
    assert out.mask is not None and out.mask.shape == (size, size)
    # A second mask of the image (another segment task's) lands where the first does.
    again = letterbox(decoded, seed=3, boxes=np.array([[x0, y0, x1, y1]]), mask=mask, original_size=original,
                      masks=[mask])
    assert len(again.masks) == 1 and torch.equal(again.masks[0], out.mask) and torch.equal(again.image, out.image)
    new_w, new_h = letterbox.fitted(width, height)
    assert (out.mask[:new_h, :new_w] != IGNORE_INDEX).all() and (out.mask[new_h:] == IGNORE_INDEX).all()
    assert (out.mask[:, new_w:] == IGNORE_INDEX).all()
    if out.keep[0]:  # the rectangle is a pixel or more wide and high in the output
        (box,) = out.boxes
        assert 0 <= box[0] < box[2] <= new_w and 0 <= box[1] < box[3] <= new_h
        assert np.allclose(box, _bounds(out.mask.numpy() == 1), atol=1.0), (box, _bounds(out.mask.numpy() == 1))
        if min(box[2] - box[0], box[3] - box[1]) >= 3:  # thinner ones blur below half brightness
            bright = out.image[0].numpy() > 0.5
            assert np.allclose(box, _bounds(bright), atol=1.0), (box, _bounds(bright))
    else:
        assert out.boxes.shape == (0, 4)


@FEW
@given(
    width=SIDES,
    height=SIDES,
    size=st.integers(min_value=1, max_value=512),
    boxes=st.lists(st.tuples(*[st.floats(-3000, 3000) | st.sampled_from([math.nan, math.inf, -math.inf])] * 4),
                   max_size=5),
    flipped=st.booleans(),
)
def test_letterboxed_boxes_never_leave_the_image(width, height, size, boxes, flipped):
    letterbox = Letterbox(size, ZERO_MEAN, UNIT_STD, train=True, flip=1.0 if flipped else 0.0)
    given_boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    # The pixels do not matter here: a 1x1 decode of a width x height image keeps the test fast.
    out = letterbox(Image.new("RGB", (1, 1)), seed=0, boxes=given_boxes, original_size=(width, height))
    new_w, new_h = letterbox.fitted(width, height)
    assert 1 <= new_w <= size and 1 <= new_h <= size
    assert out.image.shape == (3, size, size)
    assert out.keep.shape == (len(boxes),) and len(out.boxes) == int(out.keep.sum())
    for x0, y0, x1, y1 in out.boxes:  # a NaN edge drops its box; an infinite one is clipped to the image
        assert 0 <= x0 < x1 <= new_w and 0 <= y0 < y1 <= new_h
