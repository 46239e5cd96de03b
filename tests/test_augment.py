"""Declared augmentation (``augment = [...]``): ops keep boxes, masks and keypoints on their pixels, draw from the
item seed alone, and a spec's mistakes are located; images are read upright (EXIF orientation)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps
from torchvision import tv_tensors

from mtdsl.errors import SpecNameError, SpecValueError
from mtdsl.spec.augment import (
    AUGMENTS,
    DEFAULT_DENSE,
    DEFAULT_LABELS,
    AutoAugment,
    ColourJitter,
    Crop,
    Flip,
    RandAugment,
    ScaleJitter,
    TrivialAugment,
    VerticalFlip,
)
from mtdsl.spec.load import load_text
from mtdsl.train.data.augment import AUGMENT_BUILDERS, Canvas, compose, seeded
from mtdsl.train.data.box_mask_targets import IGNORE_INDEX
from mtdsl.train.data.datasets import ImageDataset, read_splits
from mtdsl.train.data.decode import ORIENTATION, decode_bytes, oriented_size, read_rgb
from mtdsl.train.data.letterbox import Letterbox
from mtdsl.train.data.resize import Resize, pretrained_resize
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.data.transforms import ImageTransform

ZERO_MEAN, UNIT_STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
SEEDS = st.integers(0, 2**63 - 1)
FEW = settings(max_examples=25, deadline=None)

#: One instance per op, with strong settings so the geometry moves (every registered kind is listed: see below).
GEOMETRY_OPS = {
    "flip": Flip(p=1.0),
    "vflip": VerticalFlip(p=1.0),
    "crop": Crop(scale=[0.3, 1.0], ratio=[0.5, 2.0]),
    "scale_jitter": ScaleJitter(min=0.5, max=1.5),
    "colour_jitter": ColourJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.2),
}
#: How many output pixels one letterboxed pixel may become under each op (a crop of 30% of the area, aspect 2).
ZOOM = {"crop": (2 / 0.3) ** 0.5, "scale_jitter": 1.5}
IMAGE_ONLY_OPS = {
    "randaugment": RandAugment(ops=3, magnitude=20),
    "trivialaugment": TrivialAugment(),
    "autoaugment": AutoAugment(policy="imagenet"),
}


def test_every_registered_op_has_a_builder_and_a_test_instance():
    assert AUGMENT_BUILDERS.missing() == []
    assert set(GEOMETRY_OPS) | set(IMAGE_ONLY_OPS) == set(AUGMENTS.kinds())
    assert {kind for kind, op in {**GEOMETRY_OPS, **IMAGE_ONLY_OPS}.items() if op.image_only} == set(IMAGE_ONLY_OPS)


# ------------------------------------------------------------------ geometry stays together


def _scene(width: int, height: int, fractions: tuple[float, float, float, float]):
    """A white rectangle on black, its mask (class 1) and its box (x1, y1 exclusive)."""
    fx, fy, fw, fh = fractions
    x0, y0 = int(fx * (width - 1)), int(fy * (height - 1))
    x1, y1 = min(width, x0 + max(4, round(fw * width))), min(height, y0 + max(4, round(fh * height)))
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[y0:y1, x0:x1] = 255
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return torch.from_numpy(pixels).permute(2, 0, 1), mask, np.array([[x0, y0, x1, y1]], dtype=np.float32)


def _bounds(on: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(on)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


SCENES = dict(
    width=st.integers(24, 160), height=st.integers(24, 160), side=st.integers(32, 96), seed=SEEDS,
    fractions=st.tuples(st.floats(0, 0.7), st.floats(0, 0.7), st.floats(0.2, 0.6), st.floats(0.2, 0.6)),
)


@pytest.mark.parametrize("squash", [False, True], ids=["letterbox", "squash"])
@pytest.mark.parametrize("kind", sorted(GEOMETRY_OPS))
@FEW
@given(**SCENES)
def test_boxes_and_masks_stay_on_their_pixels_under_every_op(kind, squash, width, height, side, seed, fractions):
    """Letterbox (or squash: ``resize = squash``) + one op: the box is the mask's bounds, and (for ops that keep
    colours) the bright pixels'.

    Both agree to a pixel plus half a letterboxed pixel (nearest-neighbour masks), magnified by the op's zoom.
    """
    pixels, mask, boxes = _scene(width, height, fractions)
    letterbox = Letterbox(side, ZERO_MEAN, UNIT_STD, train=True, augment=(GEOMETRY_OPS[kind],), squash=squash)
    out = letterbox(pixels, seed, boxes=boxes, mask=mask)
    assert out.image.shape == (3, side, side) and out.mask is not None and out.mask.shape == (side, side)
    assert out.keep.shape == (1,) and len(out.boxes) == int(out.keep.sum())
    shape = out.mask.numpy() == 1
    if not out.keep[0]:  # cropped or zoomed away: at most a sliver of the shape is left
        assert shape.sum() <= 2 * side
        return
    (box,) = out.boxes
    assert 0 <= box[0] < box[2] <= side and 0 <= box[1] < box[3] <= side
    assert shape.any()
    tolerance = 1 + ZOOM.get(kind, 1.0) / 2
    assert np.abs(_bounds(shape) - box).max() <= tolerance, (_bounds(shape), box)
    if kind != "colour_jitter" and min(box[2] - box[0], box[3] - box[1]) >= 4:
        bright = out.image.mean(0).numpy() > 0.5
        assert np.abs(_bounds(bright) - box).max() <= tolerance, (_bounds(bright), box)


@pytest.mark.parametrize("kind", sorted(GEOMETRY_OPS))
@FEW
@given(**SCENES)
def test_keypoints_stay_on_their_pixels_under_every_op(kind, width, height, side, seed, fractions):
    """The op pipeline moves ``tv_tensors.KeyPoints`` with the mask: the rectangle's centre stays inside it."""
    pixels, mask, boxes = _scene(width, height, fractions)
    x0, y0, x1, y1 = boxes[0]
    centre = torch.tensor([[(x0 + x1) / 2, (y0 + y1) / 2]])
    pipeline = compose((GEOMETRY_OPS[kind],), Canvas(None, (0, 0, 0)))
    sample = {"image": tv_tensors.Image(pixels), "mask": tv_tensors.Mask(torch.from_numpy(mask)),
              "points": tv_tensors.KeyPoints(centre, canvas_size=(height, width))}
    with seeded(seed):
        out = pipeline(sample)
    (x, y), = out["points"].tolist()
    if 0 <= x < width - 1 and 0 <= y < height - 1:
        near = out["mask"][max(0, int(y) - 1): int(y) + 2, max(0, int(x) - 1): int(x) + 2]
        assert (near == 1).any(), (kind, x, y)


@pytest.mark.parametrize("kind", sorted(IMAGE_ONLY_OPS))
@FEW
@given(seed=SEEDS, side=st.integers(16, 64))
def test_image_only_ops_make_the_output_size_for_image_labels(kind, seed, side):
    transform = ImageTransform((side, side), ZERO_MEAN, UNIT_STD, train=True, augment=(IMAGE_ONLY_OPS[kind],))
    pixels, _, _ = _scene(80, 50, (0.1, 0.1, 0.5, 0.5))
    assert transform(pixels, seed).shape == (3, side, side)


# ------------------------------------------------------------------ seeding


@pytest.mark.parametrize("ops", [DEFAULT_LABELS, tuple(IMAGE_ONLY_OPS.values()), tuple(GEOMETRY_OPS.values())])
def test_an_item_depends_on_its_seed_alone_and_leaves_the_global_generator_alone(ops):
    transform = ImageTransform((32, 32), ZERO_MEAN, UNIT_STD, train=True, augment=ops)
    pixels, _, _ = _scene(90, 60, (0.2, 0.1, 0.3, 0.5))
    torch.manual_seed(1)
    state = torch.get_rng_state()
    first = [transform(pixels, seed) for seed in range(6)]
    assert torch.equal(torch.get_rng_state(), state)  # dropout after a resume draws what it drew before
    torch.rand(5)  # the global generator moved: the items do not
    again = [transform(pixels, seed) for seed in reversed(range(6))][::-1]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert len({a.sum().item() for a in first}) > 1  # the seeds do differ


def test_no_flip_means_no_mirror_and_no_ops_means_the_plain_resize():
    pixels, _, _ = _scene(90, 60, (0.0, 0.0, 0.3, 0.5))  # the shape is on the left
    crop_only = ImageTransform((32, 32), ZERO_MEAN, UNIT_STD, train=True, augment=(Crop(scale=[0.9, 1.0]),))
    for seed in range(20):
        left, right = crop_only(pixels, seed)[:, :, :16].mean(), crop_only(pixels, seed)[:, :, 16:].mean()
        assert left > right
    plain = ImageTransform((32, 32), ZERO_MEAN, UNIT_STD, train=True, augment=())
    assert torch.equal(plain(pixels, 3), ImageTransform((32, 32), ZERO_MEAN, UNIT_STD, train=False)(pixels, 0))
    no_flip = Letterbox(32, ZERO_MEAN, UNIT_STD, train=True, augment=())
    assert torch.equal(no_flip(pixels, 5).image, Letterbox(32, ZERO_MEAN, UNIT_STD, train=False)(pixels, 0).image)


def test_a_dataset_hands_its_augment_to_the_items():
    from mtdsl.spec.data import SyntheticDataset

    config = SyntheticDataset(count=12, size=32, seed=0, split=[0.75, 0.25])
    tasks = [TaskLabels("shape", "classify", 3)]
    train = read_splits(config, tasks)["train"]
    kwargs = dict(image_size=(32, 32), mean=ZERO_MEAN, std=UNIT_STD)
    plain = ImageDataset(train, tasks, train=True, augment=(), **kwargs)
    evaluated = ImageDataset(train, tasks, train=False, **kwargs)
    flipped = ImageDataset(train, tasks, train=True, augment=(Flip(p=1.0),), **kwargs)
    for index in range(len(train)):
        assert torch.equal(plain[(index, 4)]["image"], evaluated[index]["image"])
        assert torch.equal(flipped[(index, 4)]["image"], evaluated[index]["image"].flip(-1))


# ------------------------------------------------------------------ timm's data config


@pytest.mark.parametrize("model", ["resnet10t", "tf_efficientnet_lite0", "test_resnet", "convnext_tiny"])
def test_a_pretrained_backbone_evaluates_as_timm_does(model):
    """timm's interpolation and crop_pct for pretrained weights; without weights, bilinear and the whole side."""
    from timm.data import create_transform, resolve_data_config
    from timm.models import get_pretrained_cfg

    config = get_pretrained_cfg(model)
    resize = pretrained_resize(model, "imagenet")
    assert (resize.interpolation, resize.crop_pct) == (config.interpolation, config.crop_pct)
    assert pretrained_resize(model, "none") == Resize()
    # The same picture through timm's own eval transform (PIL) and mtdsl's (tensors): the same crop.
    ys, xs = np.mgrid[0:90, 0:140]
    ramp = np.stack([xs * 255 // 139, ys * 255 // 89, (xs + ys) * 255 // 228], axis=-1).astype(np.uint8)
    picture = Image.fromarray(ramp)  # smooth, so pixel values compare across resize implementations
    picture.paste((255, 255, 255), (60, 35, 80, 55))  # a white square at the centre
    data = resolve_data_config({"input_size": (3, 64, 64), "interpolation": config.interpolation,
                                "crop_pct": config.crop_pct, "mean": ZERO_MEAN, "std": UNIT_STD})
    theirs = create_transform(**data)(picture)
    ours = ImageTransform((64, 64), ZERO_MEAN, UNIT_STD, train=False, resize=resize)(picture, 0)
    white = (theirs.min(0).values > 0.9).numpy()
    assert np.abs(_bounds((ours.min(0).values > 0.9).numpy()) - _bounds(white)).max() <= 1
    assert (ours - theirs).abs().mean() < 0.03


# ------------------------------------------------------------------ spec


SPEC = """model m
input 3x32x32
backbone trunk = timm("test_resnet")
dataset d = synthetic(count = 20) {{ {augment} }}
task shape: classify(d) {{ classes = 3 }}
"""


def test_the_augment_list_lowers_to_ops_in_order():
    spec = load_text(SPEC.format(augment="augment = [flip(0.2), crop(scale = [0.3, 1]), trivialaugment]"))
    assert spec.datasets["d"].augment == (Flip(p=0.2), Crop(scale=[0.3, 1.0]), TrivialAugment())
    assert load_text(SPEC.format(augment="")).datasets["d"].augment is None
    assert load_text(SPEC.format(augment="augment = []")).datasets["d"].augment == ()
    assert DEFAULT_DENSE == (Flip(),)


@pytest.mark.parametrize(
    ("augment", "error", "message", "at"),
    [
        ("augment = [flip, colour_jiter()]", SpecNameError, "unknown augmentation op 'colour_jiter'", "colour_jiter"),
        ("augment = [crop(scale = [1, 0.2])]", SpecValueError, "low first: write [0.2, 1]", "[1, 0.2]"),
        ("augment = [flip(2)]", SpecValueError, "p = 2", "2)"),
        ("augment = [randaugment(magnitude = 31)]", SpecValueError, "magnitude = 31", "31"),
        ("augment = flip", SpecValueError, "augment in dataset 'd' is a list of ops", "flip"),
        ("augment = [flip]; augment = []", SpecNameError, "'augment' is given twice", "augment = []"),
    ],
)
def test_augment_mistakes_are_located(augment, error, message, at):
    text = SPEC.format(augment=augment)
    with pytest.raises(error) as raised:
        load_text(text)
    assert message in raised.value.message
    line = text.splitlines()[3]
    assert raised.value.span is not None
    assert (raised.value.span.line, raised.value.span.column) == (4, line.index(at) + 1)


def test_an_unknown_op_names_the_valid_ones_and_the_closest():
    with pytest.raises(SpecNameError) as raised:
        load_text(SPEC.format(augment="augment = [color_jitter]"))
    assert "colour_jitter" in (raised.value.hint or "") and "randaugment" in (raised.value.expected or "")


def test_boxes_and_masks_refuse_ops_that_leave_them_behind_and_joined_datasets_agree():
    dense = SPEC.replace("task shape: classify(d) {{ classes = 3 }}", "") + (
        "neck p = bifpn(trunk, channels = 16, repeats = 1)\n"
        "task regions: segment(d) {{ classes = [background, circle, square, triangle] }}\n")
    text = dense.format(augment="augment = [flip, randaugment]")
    with pytest.raises(SpecValueError, match="randaugment in the augment of dataset 'd' moves pixels") as raised:
        load_text(text)
    assert raised.value.span is not None and raised.value.span.column == text.splitlines()[3].index("randaugment") + 1
    joined = """model m
backbone trunk = timm("test_resnet")
dataset a = folder("a") { augment = [vflip] }
dataset b = folder("b") { augment = [flip] }
task shape: classify(a + b) { classes = [circle, square] }
"""
    with pytest.raises(SpecValueError, match="joins datasets 'a' and 'b', which augment differently") as raised:
        load_text(joined)
    assert raised.value.span is not None and raised.value.span.line == 4


# ------------------------------------------------------------------ EXIF orientation


def _with_orientation(picture: Image.Image, orientation: int, fmt: str, **save) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    buffer = io.BytesIO()
    picture.save(buffer, fmt, exif=exif, **save)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_reads_upright(fmt, orientation):
    """What Pillow's ``exif_transpose`` shows (every viewer's picture) is what training decodes."""
    stored = Image.fromarray(np.random.default_rng(orientation).integers(0, 255, (30, 44, 3), dtype=np.uint8))
    data = _with_orientation(stored, orientation, fmt, **({"quality": 95} if fmt == "JPEG" else {"lossless": True}
                                                          if fmt == "WEBP" else {}))
    with Image.open(io.BytesIO(data)) as opened:
        upright = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    pixels, size = decode_bytes(data)
    assert size == (upright.shape[1], upright.shape[0])
    assert np.abs(pixels.permute(1, 2, 0).numpy().astype(int) - upright.astype(int)).max() <= 1


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_a_large_portrait_jpeg_decodes_smaller_but_upright_with_its_full_size(tmp_path, orientation):
    stored = Image.new("RGB", (1200, 800), "black")
    stored.paste((255, 0, 0), (0, 0, 300, 200))  # a red block at the stored top-left
    path = tmp_path / "photo.jpg"
    path.write_bytes(_with_orientation(stored, orientation, "JPEG", quality=90))
    with Image.open(path) as opened:
        upright = ImageOps.exif_transpose(opened)
        expected_size = upright.size
        red = np.asarray(upright)[..., 0] > 128
    pixels, size = read_rgb(path, draft=100)
    assert size == expected_size == oriented_size(path)
    assert pixels.shape[1] < expected_size[1] and pixels.shape[2] < expected_size[0]  # drafted
    scale = pixels.shape[2] / expected_size[0]
    found = pixels[0].numpy() > 128
    assert np.abs(_bounds(found) - _bounds(red) * scale).max() <= 2


def test_an_unreadable_file_raises_an_image_error_naming_the_problem(tmp_path):
    from mtdsl.train.data.transforms import IMAGE_ERRORS

    path = tmp_path / "broken.jpg"
    path.write_bytes(_with_orientation(Image.new("RGB", (40, 30)), 1, "JPEG")[:60])
    with pytest.raises(IMAGE_ERRORS):
        read_rgb(path)


@pytest.mark.parametrize("kind", sorted(GEOMETRY_OPS))
def test_a_one_pixel_input_letterboxes(kind):
    """torch's antialiased uint8 resize asserts on a 1x1 output; an input 3x1x1 still trains."""
    pixels, mask, boxes = _scene(16, 13, (0.0, 0.0, 1.0, 1.0))
    letterbox = Letterbox(1, ZERO_MEAN, UNIT_STD, train=True, augment=(GEOMETRY_OPS[kind],))
    out = letterbox(pixels, 0, boxes=boxes, mask=mask)
    assert out.image.shape == (3, 1, 1) and out.mask is not None and out.mask.shape == (1, 1)


def test_masks_pad_with_the_ignore_index_under_a_zoom_out():
    pixels, mask, boxes = _scene(64, 64, (0.3, 0.3, 0.4, 0.4))
    letterbox = Letterbox(64, ZERO_MEAN, UNIT_STD, train=True, augment=(ScaleJitter(min=0.5, max=0.5),))
    out = letterbox(pixels, 0, boxes=boxes, mask=mask)
    assert out.mask is not None and (out.mask[0] == IGNORE_INDEX).all() and (out.mask[32, 32] == 1)
