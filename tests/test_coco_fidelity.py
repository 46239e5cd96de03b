"""COCO numbers that other tools reproduce: mtdsl's evaluation path against plain pycocotools on the file.

A COCO file is written with images of different sizes (so the letterbox
scales each differently), crowd regions, areas that are not the boxes' (as a
segmentation's are), image and category ids out of order. A predictions
list in the file's pixels is scored twice: by pycocotools' ``COCOeval`` on
the file itself, and by mtdsl as a training run scores it, boxes coming out
of the network in letterboxed pixels and going through ``ImageDataset``,
``collate`` and ``DetectionMetric``. The two must agree.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mtdsl.spec.data import CocoDataset
from mtdsl.train.data.box_mask_targets import unletterbox_boxes
from mtdsl.train.data.datasets import ImageDataset, collate, read_splits
from mtdsl.train.data.formats.coco import read_coco_dataset
from mtdsl.train.data.letterbox import Letterbox
from mtdsl.train.data.sources import item_seed
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.metrics.detection import (
    DETECTION_REPORTED,
    DetectionMetric,
    coco_evaluate,
    most_confident_box_accuracy,
)

STATS = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
SIZE = 256  # larger than every image: a box of a pixel or more stays one after the letterbox
CATEGORIES = [{"id": 15, "name": "cow"}, {"id": 3, "name": "cat"}, {"id": 8, "name": "dog"}]
#: COCOeval.stats positions of the values DetectionMetric reports.
STAT_INDEX = {"AP": 0, "AP50": 1, "AP75": 2, "APs": 3, "APm": 4, "APl": 5, "AR100": 8}


def _box(rng: np.random.Generator, width: int, height: int, smallest: float = 2.0) -> list[float]:
    w = float(rng.uniform(smallest, width * 0.8))
    h = float(rng.uniform(smallest, height * 0.8))
    return [float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h)), w, h]


def _write_file(folder: Path, rng: np.random.Generator) -> Path:
    """A COCO file of 5-8 images of different sizes (one a negative), crowds, segmentation-like areas."""
    (folder / "images").mkdir()
    count = int(rng.integers(5, 9))
    ids = rng.permutation(np.arange(100, 100 + 3 * count))[:count].tolist()  # ids out of file order
    images, annotations = [], []
    for position, image_id in enumerate(ids):
        width, height = int(rng.integers(30, 240)), int(rng.integers(30, 240))
        name = f"img{position}.png"
        Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 255, 3))).save(folder / "images" / name)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        boxes = 0 if position == count - 1 else int(rng.integers(1, 5))
        for g in range(boxes):
            crowd = (position == 0 and g == 0) or bool(rng.random() < 0.15)
            bbox = _box(rng, width, height)
            if not crowd and rng.random() < 0.1:
                bbox[2] = 0.0  # a box with no area: nothing matches it, so COCOeval counts it missed
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(rng.choice([15, 3, 8])),
                "bbox": bbox, "area": bbox[2] * bbox[3] * float(rng.uniform(0.4, 1.0)), "iscrowd": int(crowd),
            })
    path = folder / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}))
    return path


def _predictions(path: Path, rng: np.random.Generator) -> list[dict]:
    """COCO results in the file's pixels: a jittered box for most annotations (crowds too), and strays."""
    data = json.loads(path.read_text())
    sizes = {image["id"]: (image["width"], image["height"]) for image in data["images"]}
    found = []
    for ann in data["annotations"]:
        if rng.random() < 0.85:
            width, height = sizes[ann["image_id"]]
            x, y, w, h = ann["bbox"]
            x0 = float(np.clip(x + rng.normal(0, 0.1 * w + 0.5), 0, width - 2))
            y0 = float(np.clip(y + rng.normal(0, 0.1 * h + 0.5), 0, height - 2))
            x1 = float(np.clip(x + w + rng.normal(0, 0.1 * w + 0.5), x0 + 2, width))
            y1 = float(np.clip(y + h + rng.normal(0, 0.1 * h + 0.5), y0 + 2, height))
            category = ann["category_id"] if rng.random() < 0.8 else int(rng.choice([15, 3, 8]))
            found.append({"image_id": ann["image_id"], "category_id": category,
                          "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(rng.random())})
    for image_id, (width, height) in sizes.items():
        for _ in range(int(rng.integers(0, 3))):
            found.append({"image_id": image_id, "category_id": int(rng.choice([15, 3, 8])),
                          "bbox": _box(rng, width, height), "score": float(rng.random())})
    return found


def _pycocotools(path: Path, found: list[dict]) -> tuple[np.ndarray, dict[int, float]]:
    """``COCOeval.stats`` and the per-category AP, straight from the file."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(path))
        evaluator = COCOeval(truth, truth.loadRes(found), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    per_class = {}
    for k, category in enumerate(evaluator.params.catIds):
        values = precision[:, :, k]
        per_class[category] = float(values[values > -1].mean()) if (values > -1).any() else math.nan
    return evaluator.stats, per_class


def _mtdsl(path: Path, found: list[dict], train: bool = False) -> dict[str, float]:
    """The same predictions through mtdsl's evaluation path, entering it in letterboxed pixels.

    ``train``: the images come from a training split, read for evaluation (no augmentation).
    """
    config = CocoDataset(annotations=str(path), images=str(path.parent / "images"), split=[0.5, 0.5])
    task = TaskLabels("objects", "detect", 3)
    names = read_coco_dataset(config, [task]).images  # file order
    by_file = {Path(name).name: image["id"] for name, image in zip(names, json.loads(path.read_text())["images"])}
    class_of = {category: index for index, category in enumerate(sorted(c["id"] for c in CATEGORIES))}
    letterbox = Letterbox(SIZE, **STATS, train=False)  # evaluation never augments, whatever the split
    metric = DetectionMetric(3, ["cat", "dog", "cow"])  # class index order: category ids 3, 8, 15
    for examples in read_splits(config, [task]).values():
        dataset = ImageDataset(examples, [task], image_size=(SIZE, SIZE), **STATS, train=train).for_evaluation()
        for start in range(0, len(dataset), 3):
            batch = collate([dataset[i] for i in range(start, min(start + 3, len(dataset)))])
            outputs = []
            for index in batch["index"].tolist():
                reference = examples.images[index]
                mine = [f for f in found if f["image_id"] == by_file[Path(reference).name]]
                xywh = np.array([f["bbox"] for f in mine], dtype=np.float64).reshape(-1, 4)
                xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
                # what the network would output: the boxes moved as the letterbox moves the pixels
                moved = letterbox(Image.open(reference).convert("RGB"), item_seed(0, index), boxes=xyxy)
                assert moved.keep.all()
                outputs.append({
                    "boxes": torch.from_numpy(moved.boxes),
                    "scores": torch.tensor([f["score"] for f in mine], dtype=torch.float32),
                    "classes": torch.tensor([class_of[f["category_id"]] for f in mine], dtype=torch.int64),
                })
            metric.update(outputs, batch["targets"]["objects"])
    return metric.compute()


def _same(ours: float, theirs: float) -> bool:
    theirs = math.nan if theirs < 0 else theirs  # COCOeval's -1: nothing to average over
    return (math.isnan(ours) and math.isnan(theirs)) or abs(ours - theirs) <= 1e-6


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), train=st.booleans())
def test_mtdsl_scores_a_predictions_file_as_pycocotools_does_on_the_original_annotations(seed, train):
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as folder:
        path = _write_file(Path(folder), rng)
        found = _predictions(path, rng)
        stats, per_class = _pycocotools(path, found)
        ours = _mtdsl(path, found, train)
    for name, index in STAT_INDEX.items():
        assert _same(ours[name], stats[index]), (name, ours[name], stats[index])
    for name, category in (("cat", 3), ("dog", 8), ("cow", 15)):
        assert _same(ours[f"AP/{name}"], per_class[category]), (name, ours[f"AP/{name}"], per_class[category])
    assert set(DETECTION_REPORTED) <= set(ours)


def test_a_detection_on_a_crowd_region_is_neither_right_nor_wrong():
    truth = [{"boxes": [[0, 0, 100, 100], [10, 10, 40, 40]], "classes": [0, 0], "crowd": [True, False],
              "image_size": (120, 120)}]
    found = [{"boxes": [[5, 50, 95, 95], [10, 10, 40, 40]], "scores": [0.9, 0.5], "classes": [0, 0]}]
    assert coco_evaluate(truth, found, ["person"])["AP"] == 1.0
    dropped = [{"boxes": [[10, 10, 40, 40]], "classes": [0], "image_size": (120, 120)}]
    assert coco_evaluate(dropped, found, ["person"])["AP"] < 1.0  # the crowd box gone, the 0.9 box is wrong
    only_crowds = [{"boxes": [[0, 0, 100, 100]], "classes": [0], "crowd": [True]}]
    assert math.isnan(coco_evaluate(only_crowds, [{"boxes": [], "scores": [], "classes": []}], ["person"])["AP"])


def test_the_files_areas_sort_small_medium_and_large():
    # a 40x40 box (1600 px², medium by its box) whose segmentation covers 900 px² (small)
    truth = [{"boxes": [[0, 0, 40, 40]], "classes": [0], "areas": [900.0]}]
    found = [{"boxes": [[0, 0, 40, 40]], "scores": [0.9], "classes": [0]}]
    results = coco_evaluate(truth, found, ["cat"])
    assert results["APs"] == 1.0 and math.isnan(results["APm"])
    by_box = coco_evaluate([{"boxes": [[0, 0, 40, 40]], "classes": [0]}], found, ["cat"])
    assert math.isnan(by_box["APs"]) and by_box["APm"] == 1.0


@pytest.mark.parametrize(
    "classes, dataset",
    [(3, {}), (("dog", "cat"), {}), (("cat", "dog"), {"classes": ["dog"]}), (1, {"one_class": "pet"})],
    ids=["all", "named subset", "dataset annotates some", "one class"],
)
def test_evaluation_truth_holds_the_training_boxes_plus_crowds_and_empty_boxes(tmp_path, classes, dataset):
    path = _write_file(tmp_path, np.random.default_rng(7))
    config = CocoDataset(annotations=str(path), images=str(tmp_path / "images"), **dataset)
    task = TaskLabels("objects", "detect", ("pet",) if dataset.get("one_class") else classes)
    seen_crowd = False
    for target in read_coco_dataset(config, [task]).targets["objects"]:
        truth = target.truth
        learnt = ~truth.crowd & (truth.boxes[:, 2] > truth.boxes[:, 0]) & (truth.boxes[:, 3] > truth.boxes[:, 1])
        assert np.allclose(truth.boxes[learnt], target.boxes, atol=1e-4)
        assert truth.classes[learnt].tolist() == target.classes.tolist()
        seen_crowd |= bool(truth.crowd.any())
    assert seen_crowd


def test_boxes_in_the_padding_leave_and_the_rest_divide_by_the_scale():
    boxes = np.array([[10.0, 10, 50, 30], [0, 70, 20, 90], [60, 0, 200, 20]])
    inside, keep = unletterbox_boxes(boxes, (0.5, 0.25), (100, 200))
    # the second lies below the image (y from 280), the third right of it (x from 120)
    assert keep.tolist() == [True, False, False] and inside.tolist() == [[20, 40, 100, 120]]
    assert unletterbox_boxes(boxes.astype(np.float32), (0.5, 0.25), (100, 200))[0].dtype == np.float32
    mirrored, _ = unletterbox_boxes(np.array([[10.0, 10, 30, 20]]), (0.5, 0.5), (150, 100), flipped=True)
    assert mirrored.tolist() == [[90, 20, 130, 40]]  # x 20..60 in the image, mirrored in its 150 px


def test_top_box_accuracy_leaves_crowds_out_and_survives_boxes_without_area():
    found = [{"boxes": [[0, 0, 0, 0]], "scores": [0.9], "classes": [0]},
             {"boxes": [[0, 0, 10, 10]], "scores": [0.9], "classes": [0]}]
    truth = [{"boxes": [[0, 0, 0, 0]], "classes": [0]}, {"boxes": [[0, 0, 10, 10]], "classes": [0]}]
    # torchvision's box_iou gives nan for two boxes without area; nan is not >= 0.5, so that image is wrong
    assert most_confident_box_accuracy(found, truth) == 0.5


def test_top_box_accuracy_counts_no_image_whose_only_box_is_a_crowd():
    metric = DetectionMetric(1, ["person"])
    original = {"boxes": np.array([[0.0, 0, 50, 50]]), "classes": np.array([0]), "areas": np.array([2500.0]),
                "crowd": np.array([True]), "image_id": 4, "scale": (1.0, 1.0), "size": (64, 64)}
    found = [{"boxes": torch.tensor([[0.0, 0, 50, 50]]), "scores": torch.tensor([0.9]), "classes": torch.tensor([0])}]
    metric.update(found, {"boxes": [torch.zeros(0, 4)], "classes": [torch.zeros(0, dtype=torch.long)],
                          "annotated": torch.ones(1, 1, dtype=torch.bool), "original": [original]})
    results = metric.compute()
    assert math.isnan(results["top_box_accuracy"]) and math.isnan(results["AP"])
