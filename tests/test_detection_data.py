"""Detection and segmentation data and metrics: COCO reading, box-aware transforms, AP, mIoU."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, requires_shared_data
from PIL import Image

from mtdsl.errors import DataError
from mtdsl.train.data.box_mask_targets import IGNORE_INDEX, read_mask_file, synthetic_detection
from mtdsl.train.data.formats.coco import read_coco
from mtdsl.train.data.formats.masks import read_class_names, read_masks
from mtdsl.train.data.letterbox import Letterbox, Letterboxed
from mtdsl.train.metrics.detection import coco_evaluate, most_confident_box_accuracy
from mtdsl.train.metrics.segmentation import SegmentationMetric

STATS = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def _letterboxed(examples, index: int, size: int) -> Letterboxed:
    """Example ``index`` of ``read_coco``/``read_masks`` output through the letterbox, as training reads it."""
    image = Image.open(examples.images[index]).convert("RGB")
    if hasattr(examples, "lookup"):
        mask = examples.lookup[read_mask_file(examples.masks[index])]
        return Letterbox(size, **STATS, train=False)(image, 0, mask=mask)
    return Letterbox(size, **STATS, train=False)(image, 0, boxes=examples.boxes[index])


def _truth_and_perfect():
    truth = [
        {"boxes": [[10, 10, 50, 40], [60, 20, 90, 70]], "classes": [0, 1], "image_size": (100, 100)},
        {"boxes": [[5, 5, 95, 60]], "classes": [1], "image_size": (100, 100)},
        {"boxes": np.zeros((0, 4)), "classes": [], "image_size": (100, 100)},  # a negative image
    ]
    perfect = [
        {"boxes": t["boxes"], "scores": [0.9] * len(t["classes"]), "classes": t["classes"]} for t in truth
    ]
    return truth, perfect


def _unnormalise(image: torch.Tensor) -> np.ndarray:
    mean, std = torch.tensor(STATS["mean"]).view(3, 1, 1), torch.tensor(STATS["std"]).view(3, 1, 1)
    return (image * std + mean).mul(255).permute(1, 2, 0).numpy()


def _bounds(where: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(where)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


# ---------------------------------------------------------------- COCO AP


def test_perfect_predictions_give_ap_one():
    truth, perfect = _truth_and_perfect()
    results = coco_evaluate(truth, perfect, ["cat", "dog"])
    assert results["AP"] == results["AP50"] == results["AP75"] == 1.0
    assert results["AP/cat"] == results["AP/dog"] == 1.0
    assert all(0.0 <= value <= 1.0 for value in results.values() if not math.isnan(value))


def test_shifted_boxes_lower_the_ap():
    # Shifting a box by 30% of its width leaves IoU = 0.7 / 1.3 = 0.54: still a hit at IoU 0.5,
    # a miss at 0.55 and above, so AP50 stays 1, AP75 drops to 0 and AP (0.50:0.95) is 1/10.
    truth, perfect = _truth_and_perfect()
    shifted = []
    for found in perfect:
        boxes = np.asarray(found["boxes"], dtype=float).reshape(-1, 4)
        dx = 0.3 * (boxes[:, 2] - boxes[:, 0])
        shifted.append({**found, "boxes": boxes + np.stack([dx, 0 * dx, dx, 0 * dx], axis=1)})
    results = coco_evaluate(truth, shifted, ["cat", "dog"])
    assert results["AP50"] == 1.0 and results["AP75"] == 0.0
    assert results["AP"] == pytest.approx(0.1)


def test_empty_predictions_and_classes_without_ground_truth():
    truth, perfect = _truth_and_perfect()
    nothing = [{"boxes": [], "scores": [], "classes": []} for _ in truth]
    empty = coco_evaluate(truth, nothing, ["cat", "dog", "cow"])
    assert empty["AP"] == empty["AP50"] == empty["AP/cat"] == 0.0 and math.isnan(empty["AP/cow"])
    # A class with no ground truth (cow) is left out of the mean, even when boxes are predicted for it.
    perfect[2] = {"boxes": [[0, 0, 30, 30]], "scores": [0.99], "classes": [2]}
    results = coco_evaluate(truth, perfect, ["cat", "dog", "cow"])
    assert results["AP"] == 1.0 and math.isnan(results["AP/cow"])
    # A confident false positive of a class that has ground truth does cost AP.
    perfect[2] = {"boxes": [[0, 0, 30, 30]], "scores": [0.99], "classes": [0]}
    assert coco_evaluate(truth, perfect, ["cat", "dog", "cow"])["AP/cat"] < 1.0
    with pytest.raises(ValueError, match="outside"):
        coco_evaluate(truth, [{"boxes": [[0, 0, 1, 1]], "scores": [1], "classes": [5]}] * 3, ["cat", "dog"])


def test_most_confident_box_accuracy():
    truth = [
        {"boxes": [[0, 0, 10, 10]], "classes": [1]},
        {"boxes": [[0, 0, 10, 10]], "classes": [0]},
        {"boxes": [[0, 0, 10, 10]], "classes": [0]},
        {"boxes": [[0, 0, 10, 10]], "classes": [0]},
        {"boxes": np.zeros((0, 4)), "classes": []},  # no ground truth: not counted
    ]
    found = [
        {"boxes": [[0, 0, 10, 10], [1, 1, 9, 9]], "scores": [0.9, 0.3], "classes": [1, 0]},  # right
        {"boxes": [[0, 0, 10, 10], [1, 1, 9, 9]], "scores": [0.3, 0.9], "classes": [0, 1]},  # best box: wrong class
        {"boxes": [[20, 20, 30, 30]], "scores": [0.9], "classes": [0]},  # right class, wrong place
        {"boxes": [], "scores": [], "classes": []},  # nothing found
        {"boxes": [[0, 0, 5, 5]], "scores": [0.9], "classes": [0]},
    ]
    assert most_confident_box_accuracy(found, truth) == 0.25
    assert math.isnan(most_confident_box_accuracy(found[4:], truth[4:]))


# ---------------------------------------------------------------- mIoU


def test_segmentation_miou_by_hand_with_ignored_pixels():
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 255]]])
    predicted = torch.tensor([[[0, 1, 1, 1], [2, 0, 2, 0]]])
    logits = torch.nn.functional.one_hot(predicted, 3).permute(0, 3, 1, 2).float()
    metric = SegmentationMetric(3, ["sky", "road", "car"])
    metric.update(logits, target)
    results = metric.compute()
    # Six counted pixels: class 0 hit 1 (union 3: two targets, two predictions), class 1 hit 2 (union 3),
    # class 2 hit 1 (union 2); the two ignored pixels' predictions count for nothing.
    assert results["iou/sky"] == pytest.approx(1 / 3)
    assert results["iou/road"] == pytest.approx(2 / 3)
    assert results["iou/car"] == pytest.approx(1 / 2)
    assert results["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert results["pixel_accuracy"] == pytest.approx(4 / 6) and metric.main == "miou"
    # Two half batches count the same as one; low-resolution logits are upsampled to the target.
    halves = SegmentationMetric(3)
    halves.update(logits[..., :2], target[..., :2])
    halves.update(logits[..., 2:], target[..., 2:])
    assert torch.equal(halves.confusion, metric.confusion)
    coarse = SegmentationMetric(2)
    coarse.update(torch.tensor([[[[1.0]], [[0.0]]]]), torch.zeros(1, 4, 4, dtype=torch.long))
    assert coarse.compute()["miou"] == 1.0 and math.isnan(coarse.compute()["iou/1"])


# ---------------------------------------------------------------- transforms


def _rectangle_scene(box=(30, 20, 90, 70), size=(200, 120)):
    pixels = np.full((size[1], size[0], 3), 128, dtype=np.uint8)
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = (230, 20, 20)
    mask = np.zeros((size[1], size[0]), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return Image.fromarray(pixels), np.array([box], dtype=np.float32), mask


@pytest.mark.parametrize("flipped", [False, True])
def test_letterbox_and_flip_keep_boxes_and_masks_on_the_object(flipped):
    image, boxes, mask = _rectangle_scene()
    out = Letterbox(64, **STATS, train=True, flip=1.0 if flipped else 0.0)(image, 7, boxes=boxes, mask=mask)
    assert out.image.shape == (3, 64, 64) and out.mask.shape == (64, 64) and out.keep.tolist() == [True]
    assert out.scale == (0.32, 38 / 120)  # 200x120 fits as 64x38
    pixels = _unnormalise(out.image)
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 75)
    assert np.abs(np.array(_bounds(red)) - out.boxes[0]).max() <= 1.5
    assert np.abs(np.array(_bounds(out.mask.numpy() == 1)) - out.boxes[0]).max() <= 1.0
    # Padding below the 38 image rows: the mean colour (0 after normalisation) and ignored mask pixels.
    assert out.image[:, 38:].abs().max() < 0.02 and (out.mask[38:] == IGNORE_INDEX).all()
    assert (out.mask[:38] != IGNORE_INDEX).all()
    x0 = out.boxes[0, 0]
    assert (x0 > 32) == flipped  # the object is on the left of the original


def test_letterbox_clips_and_drops_degenerate_boxes():
    image, _, _ = _rectangle_scene()
    boxes = np.array([[30, 20, 90, 70], [-50, 10, 40, 50], [10, 10, 10, 50], [100, 30, 101, 31]], dtype=np.float32)
    out = Letterbox(64, **STATS, train=False)(image, 0, boxes=boxes)
    # the second is clipped at the left edge; zero width and sub-pixel boxes are dropped
    assert out.keep.tolist() == [True, True, False, False]
    assert out.boxes[1, 0] == 0.0 and out.boxes.shape == (2, 4)


def test_synthetic_detection_boxes_match_masks():
    """The box, class and mask of a synthetic sample describe one shape (through ``ImageDataset`` in
    tests/test_dense_data.py they stay together under letterbox and flip)."""
    for index in range(6):
        sample = synthetic_detection(index, 48, 0)
        assert tuple(sample.boxes[0]) == _bounds(sample.mask > 0) and sample.classes[0] == sample.mask.max() - 1


# ---------------------------------------------------------------- reading


def _write_coco(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (40, 30), "white").save(images / name)
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 40, "height": 30},
            {"id": 2, "file_name": "b.jpg", "width": 40, "height": 30},
            {"id": 3, "file_name": "c.jpg", "width": 40, "height": 30},
        ],
        "categories": [{"id": 3, "name": "car"}, {"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 5], "area": 50, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 18, "bbox": [5, 5, 4, 4], "area": 16, "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 30], "area": 1200, "iscrowd": 1},
            {"id": 4, "image_id": 2, "category_id": 3, "bbox": [3, 3, 6, 6], "area": 36, "iscrowd": 0},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path


def test_read_coco_classes_crowds_and_negatives(tmp_path):
    path = _write_coco(tmp_path)
    every = read_coco(path, tmp_path / "images")
    assert every.class_names == ("person", "car", "dog")  # sorted by category id
    assert every.box_count == 3 and len(every) == 3  # the crowd box is dropped, image c is a negative
    assert every.boxes[0].tolist() == [[1, 2, 11, 7], [5, 5, 9, 9]] and every.classes[0].tolist() == [0, 2]

    dogs = read_coco(path, tmp_path / "images", ["dog", "person"])
    assert dogs.classes[0].tolist() == [1, 0] and len(dogs.boxes[1]) == 0 and dogs.class_names == ("dog", "person")
    assert len(read_coco(path, tmp_path / "images", ["dog"], keep_empty=False)) == 1

    with pytest.raises(DataError, match="no category 'dgo'") as error:
        read_coco(path, tmp_path / "images", ["dgo"])
    assert "did you mean 'dog'" in error.value.render() and "car, dog, person" in error.value.render()
    (tmp_path / "images" / "b.jpg").unlink()
    with pytest.raises(DataError, match="1 of 3 image files do not exist"):
        read_coco(path, tmp_path / "images")


def test_read_masks_maps_values_and_needs_a_mask_per_image(tmp_path):
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    Image.new("RGB", (8, 6), "white").save(tmp_path / "images" / "f.png")
    Image.fromarray(np.array([[1, 2, 3, 3, 0, 0, 0, 0]] * 6, dtype=np.uint8)).save(tmp_path / "masks" / "f.png")
    trimap = read_masks(tmp_path / "images", tmp_path / "masks", {2: 0, 1: 1})
    mask = _letterboxed(trimap, 0, 8).mask
    assert mask[0].tolist() == [1, 0, 255, 255, 255, 255, 255, 255] and (mask[6:] == 255).all()
    ignoring = read_masks(tmp_path / "images", tmp_path / "masks", ignore=[3])
    assert _letterboxed(ignoring, 0, 8).mask[0, :4].tolist() == [1, 2, 255, 255]
    Image.new("RGB", (8, 6), "white").save(tmp_path / "images" / "g.png")
    with pytest.raises(DataError, match=r"1 of 2 images .* have no mask"):
        read_masks(tmp_path / "images", tmp_path / "masks")


# ---------------------------------------------------------------- real data


@pytest.mark.data
@requires_shared_data("coco128")
def test_coco128_boxes():
    root = SHARED_DATA / "coco128"
    examples = read_coco(root / "annotations" / "instances_train2017.json", root / "images" / "train2017")
    assert len(examples) == 128 and examples.box_count == 929 and len(examples.class_names) == 80
    assert sum(len(boxes) == 0 for boxes in examples.boxes) == 2 and examples.class_names[0] == "person"
    item = _letterboxed(examples, 0, 128)
    assert item.image.shape == (3, 128, 128) and len(item.boxes) == item.keep.sum() > 0
    assert float(item.boxes.min()) >= 0 and float(item.boxes.max()) <= 128


@pytest.mark.data
@requires_shared_data("oxford-pets-3class")
def test_pets_head_boxes_score_perfectly_against_themselves():
    root = SHARED_DATA / "oxford-pets-3class"
    heads = read_coco(root / "annotations" / "instances_heads.json", root / "images", keep_empty=False)
    assert len(heads) == 296 and heads.class_names == ("cat", "dog") and heads.box_count >= 296
    truth = [{"boxes": b, "classes": c} for b, c in zip(heads.boxes, heads.classes)]
    found = [{"boxes": b, "scores": np.ones(len(c)), "classes": c} for b, c in zip(heads.boxes, heads.classes)]
    assert coco_evaluate(truth, found, heads.class_names)["AP"] == 1.0
    assert most_confident_box_accuracy(found, truth) == 1.0


@pytest.mark.data
@requires_shared_data("camvid")
def test_camvid_mask_void_is_ignored():
    root = SHARED_DATA / "camvid"
    names = read_class_names(root / "classes.txt")
    assert len(names) == 12 and names[3] == "Road" and names[11] == "Unlabelled"
    examples = read_masks(root / "images" / "val", root / "masks" / "val", ignore=[11])
    assert len(examples) == 101
    raw = np.asarray(Image.open(examples.masks[0]))
    mask = _letterboxed(examples, 0, 320).mask.numpy()
    assert set(np.unique(mask)) <= set(range(11)) | {IGNORE_INDEX}
    # 320x240 keeps its size: the top 240 rows are the mask itself, void turned into 255, the rest padding.
    assert np.array_equal(mask[:240] == IGNORE_INDEX, raw == 11) and (mask[240:] == IGNORE_INDEX).all()
