"""A dataset's ``resize = letterbox | crop | squash``: how a picture becomes the model's input.

Without it nothing changes: a stream with a detect or segment task letterboxes,
one of image-label tasks only crops (timm's eval: shorter side, centre crop).
Boxes and masks stay on their pixels under ``letterbox`` and ``squash``;
``crop`` on a dense task is a located error, never a crash in training.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtdsl.compiler import compile_text
from mtdsl.errors import SpecValueError
from mtdsl.predict.predictor import LETTERBOX, RESIZE, SQUASH, task_views
from mtdsl.spec.augment import Flip
from mtdsl.spec.data import SyntheticDataset, resize_policy
from mtdsl.spec.load import load_text
from mtdsl.train.data.datasets import ImageDataset, read_splits
from mtdsl.train.data.letterbox import Letterbox
from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.data.tasks import TaskLabels, task_labels
from mtdsl.train.data.transforms import ImageTransform

ZERO_MEAN, UNIT_STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
SHAPE = [TaskLabels("shape", "classify", 3)]
REGIONS = [TaskLabels("regions", "segment", ("background", "circle", "square", "triangle"))]


def _halves(width: int = 64, height: int = 32) -> torch.Tensor:
    """A ``width`` x ``height`` picture: red on the left half, blue on the right."""
    pixels = torch.zeros((3, height, width), dtype=torch.uint8)
    pixels[0, :, : width // 2] = 255
    pixels[2, :, width // 2 :] = 255
    return pixels


def _dataset(fit: str | None, tasks=SHAPE, train: bool = False, **kwargs) -> ImageDataset:
    config = SyntheticDataset(count=8, size=32, seed=0, split=[0.5, 0.5])
    examples = read_splits(config, tasks)["train"]
    return ImageDataset(examples, tasks, image_size=(32, 32), mean=ZERO_MEAN, std=UNIT_STD, train=train, fit=fit,
                        **kwargs)


# ------------------------------------------------------------------ the policies, on pixels


def test_without_resize_a_stream_keeps_todays_policy():
    assert isinstance(_dataset(None).transform, ImageTransform)  # image labels alone: crop
    dense = _dataset(None, SHAPE + REGIONS).transform
    assert isinstance(dense, Letterbox) and not dense.squash
    assert resize_policy(SyntheticDataset(), dense=True) == "letterbox"
    assert resize_policy(SyntheticDataset(), dense=False) == "crop"
    assert resize_policy(SyntheticDataset(resize="squash"), dense=True) == "squash"


def test_each_policy_fits_a_wide_picture_its_own_way():
    """64x32, red | blue, to 32x32: crop keeps the centre square, letterbox pads the bottom, squash keeps it all."""
    picture = _halves()
    crop = _dataset("crop").transform(picture, 0)
    letterbox = _dataset("letterbox").transform(picture, 0).image
    squash = _dataset("squash").transform(picture, 0).image
    # crop: the centre 32x32 of the picture, red on its left half and blue on its right, nothing padded
    assert crop[0, :, :14].min() > 0.9 and crop[2, :, 18:].min() > 0.9
    # letterbox: the whole picture in the top half (32x16), the bottom half the mean colour (0 here)
    assert letterbox[0, :16, :14].min() > 0.9 and letterbox[2, :16, 18:].min() > 0.9
    assert letterbox[:, 17:].abs().max() == 0
    # squash: the whole picture over the whole square
    assert squash[0, :, :14].min() > 0.9 and squash[2, :, 18:].min() > 0.9 and squash[1].abs().max() == 0


def test_crop_refuses_a_dense_task_and_square_policies_refuse_a_wide_input():
    with pytest.raises(ValueError, match="cannot be cropped"):
        _dataset("crop", SHAPE + REGIONS)
    config = SyntheticDataset(count=8, size=32, seed=0, split=[0.5, 0.5])
    examples = read_splits(config, SHAPE)["train"]
    with pytest.raises(ValueError, match="resize = squash squashes images to a square"):
        ImageDataset(examples, SHAPE, image_size=(32, 48), mean=ZERO_MEAN, std=UNIT_STD, train=False, fit="squash")


def test_image_label_tasks_letterboxed_take_image_only_ops_and_default_to_crop_and_flip():
    from mtdsl.spec.augment import DEFAULT_SYNTHETIC_LABELS, TrivialAugment

    assert _dataset("letterbox", train=True).transform.augment == DEFAULT_SYNTHETIC_LABELS
    trivial = _dataset("squash", train=True, augment=(TrivialAugment(),))
    first, again = trivial[(0, 5)]["image"], trivial[(0, 5)]["image"]
    assert first.shape == (3, 32, 32) and torch.equal(first, again)  # seeded, and no box list to refuse


# ------------------------------------------------------------------ geometry stays together


@settings(max_examples=40, deadline=None)
@given(width=st.integers(24, 160), height=st.integers(24, 160), side=st.integers(32, 96),
       seed=st.integers(0, 2**63 - 1), flip=st.booleans(),
       fractions=st.tuples(st.floats(0, 0.7), st.floats(0, 0.7), st.floats(0.2, 0.6), st.floats(0.2, 0.6)))
def test_squashed_boxes_and_masks_stay_on_their_pixels(width, height, side, seed, flip, fractions):
    """The box is the mask's bounds and the bright pixels', each axis scaled by its own factor."""
    fx, fy, fw, fh = fractions
    x0, y0 = int(fx * (width - 1)), int(fy * (height - 1))
    x1, y1 = min(width, x0 + max(4, round(fw * width))), min(height, y0 + max(4, round(fh * height)))
    pixels = torch.zeros((3, height, width), dtype=torch.uint8)
    pixels[:, y0:y1, x0:x1] = 255
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    boxes = np.array([[x0, y0, x1, y1]], dtype=np.float32)
    squash = Letterbox(side, ZERO_MEAN, UNIT_STD, train=True, augment=(Flip(p=1.0),) if flip else (), squash=True)
    out = squash(pixels, seed, boxes=boxes, mask=mask)
    sx, sy = side / width, side / height
    assert out.scale == pytest.approx((sx, sy))
    expected = np.array([x0 * sx, y0 * sy, x1 * sx, y1 * sy], dtype=np.float32)
    if flip:
        expected[[0, 2]] = side - expected[[2, 0]]
    (box,) = out.boxes
    assert np.abs(box - expected).max() < 1e-3
    shape = out.mask.numpy() == 1
    ys, xs = np.nonzero(shape)
    assert np.abs(np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) - box).max() <= 1
    bright = out.image.mean(0).numpy() > 0.5
    ys, xs = np.nonzero(bright)
    assert np.abs(np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) - box).max() <= 1
    assert (out.mask.numpy() != 255).all()  # nothing padded


# ------------------------------------------------------------------ the spec


SPEC = """model m
input {input}
backbone trunk = timm("test_resnet")
neck p = bifpn(trunk, channels = 16, repeats = 1)
dataset d = synthetic(count = 16, size = 32, split = 0.5/0.5) {{ {resize} }}
dataset e = synthetic(count = 16, size = 32, split = 0.5/0.5, seed = 1)
task regions: segment(d) {{ classes = [background, circle, square, triangle] }}
task shape: classify({shape}) {{ classes = 3 }}
train {{ batch_size = 4; workers = 0; epochs = 1 }}
"""


def _spec(resize: str = "", shape: str = "e", input: str = "3x32x32") -> str:
    return SPEC.format(resize=resize, shape=shape, input=input)


def test_resize_lowers_in_the_call_or_the_block():
    assert load_text(_spec("resize = squash")).datasets["d"].resize == "squash"
    assert load_text(_spec()).datasets["d"].resize is None
    inline = _spec().replace("seed = 1)", "seed = 1, resize = letterbox)")
    assert load_text(inline).datasets["e"].resize == "letterbox"


def test_crop_on_a_dataset_a_dense_task_reads_is_located_with_its_fix():
    text = _spec("resize = crop")
    with pytest.raises(SpecValueError, match="resize = crop in dataset 'd' cuts the centre out") as raised:
        load_text(text)
    line = text.splitlines()[4]
    assert (raised.value.span.line, raised.value.span.column) == (5, line.index("crop") + 1)
    assert "letterbox" in raised.value.hint and "squash" in (raised.value.expected or "")


def test_a_square_policy_on_a_wide_input_is_located():
    text = _spec(input="3x32x48").replace("neck p = bifpn(trunk, channels = 16, repeats = 1)\n", "").replace(
        "task regions: segment(d) { classes = [background, circle, square, triangle] }\n", "").replace(
        "seed = 1)", "seed = 1) { resize = squash }")
    with pytest.raises(SpecValueError, match="resize = squash in dataset 'e' makes a square picture") as raised:
        load_text(text)
    assert raised.value.span.line == 5 and "resize = crop" in raised.value.hint
    load_text(text.replace("resize = squash", "resize = crop"))  # crop makes any shape


def test_joined_datasets_agree_on_resize():
    joined = """model m
backbone trunk = timm("test_resnet")
dataset a = folder("a") { resize = squash }
dataset b = folder("b")
task shape: classify(a + b) { classes = [circle, square] }
"""
    with pytest.raises(SpecValueError, match="joins datasets 'a' and 'b', which resize differently") as raised:
        load_text(joined)
    assert raised.value.span is not None and raised.value.span.line == 3


def test_the_policy_reaches_the_loaders_and_predict_alike():
    spec = load_text(_spec("resize = squash"))
    labels = {label.task: label for label in task_labels(spec)}
    loaders = StreamLoaders(spec.streams, spec.datasets, labels, image_size=(32, 32), mean=ZERO_MEAN, std=UNIT_STD,
                            seed=0, workers=0, on_corrupt="error", device=torch.device("cpu"))
    squashed, cropped = (loaders.splits[index]["val"].transform for index in range(2))
    assert isinstance(squashed, Letterbox) and squashed.squash and isinstance(cropped, ImageTransform)
    assert task_views(spec, ["regions", "shape"]) == {SQUASH: ["regions"], RESIZE: ["shape"]}
    assert task_views(load_text(_spec()), ["regions", "shape"]) == {LETTERBOX: ["regions"], RESIZE: ["shape"]}
    assert task_views(load_text(_spec(shape="d")), ["regions", "shape"]) == {LETTERBOX: ["regions", "shape"]}


def test_train_py_and_the_spec_hash_say_resize_only_when_written():
    from mtdsl.codegen.train_source import spec_block
    from mtdsl.train.run.fingerprints import spec_hash

    plain, squashed = compile_text(_spec()), compile_text(_spec("resize = squash"))
    assert "resize=" not in spec_block(plain.spec, plain.graph).split("DATASETS = {")[1].split("}\n")[0]
    assert "resize='squash'" in spec_block(squashed.spec, squashed.graph)
    assert spec_hash(plain.spec) != spec_hash(squashed.spec)


def test_a_squashed_segment_run_trains_and_predicts_masks_at_each_image_size(tmp_path):
    from PIL import Image

    from mtdsl.cli import main

    spec = tmp_path / "m.mtl"
    spec.write_text(_spec("resize = squash"), encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "--quiet"]) == 0
    picture = tmp_path / "wide.png"
    Image.fromarray(np.full((20, 50, 3), 128, dtype=np.uint8)).save(picture)
    out = tmp_path / "predicted"
    assert main(["predict", str(spec), str(picture), "--checkpoint", str(run / "checkpoints" / "best.pt"),
                 "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    masks = list(out.rglob("*regions*.png"))
    assert masks and all(Image.open(path).size == (50, 20) for path in masks)
