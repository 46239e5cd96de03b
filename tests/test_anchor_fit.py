"""Anchor coverage (mtdsl.detection.coverage), its report before training, and ``mtdsl check --data``."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, requires_shared_data
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mtdsl.cli import main
from mtdsl.detection.anchors import AnchorConfig, AnchorLabeler, generate_anchors
from mtdsl.detection.bench import DetectionSetup
from mtdsl.detection.coverage import anchor_coverage, best_anchor_scale
from mtdsl.train.loop.anchor_fit import advice

CONFIG = AnchorConfig(min_level=3, max_level=5, anchor_scale=4.0)
SIZE = (64, 64)


def box_lists(max_boxes: int = 12):
    side = st.floats(1.0, 64.0)
    corner = st.floats(0.0, 60.0)
    box = st.tuples(corner, corner, side, side).map(lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]])
    return st.lists(st.lists(box, max_size=4), min_size=1, max_size=max_boxes).map(
        lambda images: [np.array(boxes, dtype=np.float32).reshape(-1, 4) for boxes in images]
    )


@settings(max_examples=60, deadline=None)
@given(boxes=box_lists(), match_iou=st.sampled_from([0.3, 0.5, 0.7]))
def test_coverage_counts_the_boxes_whose_best_anchor_clears_the_threshold(boxes, match_iou):
    found = anchor_coverage(CONFIG, match_iou, SIZE, boxes)
    anchors = generate_anchors(CONFIG, SIZE).double()
    every = torch.from_numpy(np.concatenate(boxes)).double()
    # By hand: every box against every anchor, in float64.
    x0 = torch.maximum(every[:, None, 0], anchors[None, :, 0])
    y0 = torch.maximum(every[:, None, 1], anchors[None, :, 1])
    x1 = torch.minimum(every[:, None, 2], anchors[None, :, 2])
    y1 = torch.minimum(every[:, None, 3], anchors[None, :, 3])
    inter = (x1 - x0).clamp(min=0) * (y1 - y0).clamp(min=0)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    best = (inter / (area(every)[:, None] + area(anchors)[None, :] - inter)).max(dim=1).values
    assert found.boxes == len(every)
    # float32 against float64: only boxes within 1e-5 of the threshold may differ.
    assert abs(found.matched - int((best >= match_iou).sum())) <= int(((best - match_iou).abs() < 1e-5).sum())
    assert 0.0 <= found.share <= 1.0


@settings(max_examples=30, deadline=None)
@given(boxes=box_lists())
def test_a_higher_threshold_never_matches_more_boxes(boxes):
    assert anchor_coverage(CONFIG, 0.7, SIZE, boxes).matched <= anchor_coverage(CONFIG, 0.5, SIZE, boxes).matched


def test_a_box_that_is_an_anchor_is_matched_and_the_best_scale_fits_the_boxes():
    anchors = generate_anchors(CONFIG, SIZE)
    assert anchor_coverage(CONFIG, 0.99, SIZE, [anchors[:5].numpy()]).matched == 5
    # 8-px boxes: too small for anchor_scale 4 (32-px anchors at stride 8), right for anchor_scale 1.
    small = [np.array([[x, x, x + 8, x + 8] for x in range(0, 48, 8)], dtype=np.float32)]
    assert anchor_coverage(CONFIG, 0.5, SIZE, small).share == 0.0
    scale, found = best_anchor_scale(CONFIG, 0.5, SIZE, small)
    assert scale == 1.0 and found.share == 1.0
    setup = DetectionSetup(CONFIG, AnchorLabeler(), SIZE)
    assert "anchor_scale = 1" in advice(setup, small, anchor_coverage(CONFIG, 0.5, SIZE, small))


def test_boxes_smaller_than_any_anchor_can_fit_say_to_raise_the_input_size():
    tiny = [np.array([[10, 10, 11, 11], [30, 30, 31.5, 31.5]], dtype=np.float32)]
    setup = DetectionSetup(CONFIG, AnchorLabeler(), SIZE)
    said = advice(setup, tiny, anchor_coverage(CONFIG, 0.5, SIZE, tiny))
    assert "raise the input size" in said and "0%" in said


def test_no_boxes_is_full_coverage():
    found = anchor_coverage(CONFIG, 0.5, SIZE, [np.zeros((0, 4), np.float32)])
    assert (found.boxes, found.share) == (0, 1.0)


# ------------------------------------------------------------------- check --data

DETECT_SPEC = """model boxes
input 3x64x64
backbone trunk = timm("test_efficientnet", pretrained = none)
neck pyramid = bifpn(trunk, channels = 16, repeats = 1, max_level = 5)
dataset things = coco("{annotations}", images = "{images}", split = 0.5/0.5)
task objects: detect(things) {{
    classes = [thing]
    head = efficientdet(depth = 1, anchor_scale = {anchor_scale})
}}
train {{ batch_size = 2 }}
"""


def write_coco(folder, side: int, box: float):
    """Four ``side``-px images, each with one ``box``-px square."""
    images = folder / "images"
    images.mkdir()
    entries, annotations = [], []
    for index in range(4):
        Image.new("RGB", (side, side), (90, 90, 90)).save(images / f"{index}.png")
        entries.append({"id": index, "file_name": f"{index}.png", "width": side, "height": side})
        annotations.append({"id": index, "image_id": index, "category_id": 1, "bbox": [4, 4, box, box],
                            "iscrowd": 0, "area": box * box})
    path = folder / "instances.json"
    path.write_text(json.dumps({"images": entries, "annotations": annotations,
                                "categories": [{"id": 1, "name": "thing"}]}))
    return path, images


def test_check_data_reports_each_detect_tasks_anchor_fit_and_names_a_better_scale(tmp_path, capsys):
    # 256-px images letterboxed to 64 px: a 32-px box becomes 8 px, which anchor_scale 4 (32-px anchors) misses.
    annotations, images = write_coco(tmp_path, 256, 32)
    spec = tmp_path / "boxes.mtl"
    spec.write_text(DETECT_SPEC.format(annotations=annotations, images=images, anchor_scale=4))
    assert main(["check", "--data", str(spec)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "things → objects: 2 train · 2 val" in out
    assert "objects: anchors match 0% of 2 training boxes at IoU 0.5" in out
    assert "head = efficientdet(anchor_scale = 1) would match 100%" in out

    spec.write_text(DETECT_SPEC.format(annotations=annotations, images=images, anchor_scale=1))
    assert main(["check", "--data", str(spec)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "objects: anchors match 100% of 2 training boxes" in out and "warning" not in out


def test_check_data_locates_a_dataset_that_cannot_be_read_at_its_declaration(tmp_path, capsys):
    _, images = write_coco(tmp_path, 64, 16)
    spec = tmp_path / "boxes.mtl"
    spec.write_text(DETECT_SPEC.format(annotations=tmp_path / "missing.json", images=images, anchor_scale=2))
    assert main(["check", str(spec)]) == 0  # the spec itself is fine: nothing is read without --data
    capsys.readouterr()
    assert main(["check", "--data", "--json", str(spec)]) == 2
    [record] = json.loads(capsys.readouterr().out)
    assert (record["line"], record["col"], record["stage"]) == (5, 9, "data error")
    assert "missing.json does not exist" in record["message"]


def test_check_data_on_a_synthetic_spec_reads_without_files(capsys):
    assert main(["check", "--data", "specs/quickstart.mtl"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "shapes → shape, colour, large, objects, regions" in out and "objects: anchors match" in out


@pytest.mark.data
@requires_shared_data("oxford-pets-3class")
def test_pet_head_anchors_fit_at_160_px(capsys):
    assert main(["check", "--data", "specs/real/pets.mtl", "--set", f"data={SHARED_DATA}"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "pet: anchors match 100% of" in out


def test_without_boxes_every_scale_ties_and_the_specs_own_wins():
    scale, _ = best_anchor_scale(dataclasses.replace(CONFIG, num_scales=1), 0.5, SIZE, [np.zeros((0, 4))])
    assert scale == CONFIG.anchor_scale  # no boxes: every scale ties, the spec's own wins


def test_a_large_split_is_measured_on_an_even_sample_of_its_images(tmp_path):
    from mtdsl.spec.data import SyntheticDataset
    from mtdsl.train.data.box_mask_targets import BoxTarget, object_array
    from mtdsl.train.data.datasets import Examples
    from mtdsl.train.loop.anchor_fit import input_boxes

    # 64-px synthetic images, each with one box whose left edge is its index: which were measured shows.
    targets = object_array([BoxTarget(np.array([[i, 0, i + 8, 8]], np.float32), np.zeros(1, np.int64),
                                      np.ones(1, bool)) for i in range(50)])
    examples = Examples(tuple(range(50)), {"objects": targets}, SyntheticDataset(count=50, size=64))
    assert len(input_boxes(examples, "objects", 64)) == 50
    sampled = input_boxes(examples, "objects", 64, limit=10)
    assert [int(boxes[0, 0]) for boxes in sampled] == list(range(0, 50, 5))
    assert [int(b[0, 0]) for b in input_boxes(examples, "objects", 32, limit=10)][:2] == [0, 2]  # scaled by 32/64
