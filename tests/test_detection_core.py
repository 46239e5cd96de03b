"""The detection core: anchors, labeller, box coder, post-processing and losses (CPU, no model)."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import box_iou

from mtdsl.detection.anchors import (
    BACKGROUND,
    IGNORE,
    AnchorConfig,
    AnchorLabeler,
    batch_targets,
    feature_sizes,
    generate_anchors,
    num_anchors_per_location,
)
from mtdsl.detection.boxes import MAX_LOG_SCALE, decode, encode, postprocess
from mtdsl.detection.loss import DetectionLoss, box_loss, focal_loss
from mtdsl.nn.heads.dense import flatten_levels

CONFIG = AnchorConfig()
IMAGE = (128, 128)


@pytest.fixture(scope="module")
def anchors() -> torch.Tensor:
    return generate_anchors(CONFIG, IMAGE)


def sizes(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]


def centres(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2


# ---------------------------------------------------------------------------
# anchors
# ---------------------------------------------------------------------------


def test_anchor_count_sums_levels(anchors):
    per_location = num_anchors_per_location(CONFIG)
    assert per_location == 9
    expected = sum((128 // 2**level) * (128 // 2**level) * per_location for level in range(3, 8))
    assert anchors.shape == (expected, 4) == (3069, 4)


def test_level3_anchor_size_and_centres_on_stride_grid(anchors):
    level3 = anchors[: 16 * 16 * 9].view(16, 16, 9, 4)  # (y, x, anchor, coord)
    width, height = sizes(level3[:, :, 0])  # scale 0, ratio 1:1
    assert torch.allclose(width, torch.tensor(CONFIG.anchor_scale * 8)) and torch.allclose(height, width)
    cx, cy = centres(level3)
    grid = (torch.arange(16, dtype=torch.float32) + 0.5) * 8
    assert torch.allclose(cx, grid.view(1, 16, 1).expand(16, 16, 9))
    assert torch.allclose(cy, grid.view(16, 1, 1).expand(16, 16, 9))
    # scale 1 is 2^(1/3) larger; ratio (1.4, 0.7) is wide.
    w1, _ = sizes(level3[0, 0, 3])
    assert math.isclose(float(w1), 32 * 2 ** (1 / 3), rel_tol=1e-6)
    w, h = sizes(level3[0, 0, 1])
    assert math.isclose(float(w), 32 * 1.4, rel_tol=1e-6) and math.isclose(float(h), 32 * 0.7, rel_tol=1e-6)


def test_odd_image_sizes_use_ceil_grids():
    config = AnchorConfig(min_level=3, max_level=4, num_scales=1, aspect_ratios=((1.0, 1.0),))
    assert feature_sizes(config, (100, 70)) == [(13, 9), (7, 5)]
    assert generate_anchors(config, (100, 70)).shape == (13 * 9 + 7 * 5, 4)


def test_head_flattening_matches_anchor_order(anchors):
    """The contract with the head: a fake head output holding each anchor's own box, flattened by the head's code."""
    per_location = num_anchors_per_location(CONFIG)
    outputs = []
    for level, (h, w) in zip(CONFIG.levels, feature_sizes(CONFIG, IMAGE)):
        stride = 2**level
        out = torch.zeros(2, per_location * 4, h, w)
        for a in range(per_location):
            scale, ratio = divmod(a, len(CONFIG.aspect_ratios))
            rx, ry = CONFIG.aspect_ratios[ratio]
            half_w = CONFIG.anchor_scale * stride * 2 ** (scale / CONFIG.num_scales) * rx / 2
            half_h = CONFIG.anchor_scale * stride * 2 ** (scale / CONFIG.num_scales) * ry / 2
            cx = ((torch.arange(w) + 0.5) * stride).view(1, w).expand(h, w)
            cy = ((torch.arange(h) + 0.5) * stride).view(h, 1).expand(h, w)
            for k, value in enumerate((cx - half_w, cy - half_h, cx + half_w, cy + half_h)):
                out[:, a * 4 + k] = value
        outputs.append(out)
    flat = flatten_levels(outputs, per_location)
    assert flat.shape == (2, anchors.shape[0], 4)
    assert torch.allclose(flat[0], anchors) and torch.allclose(flat[1], anchors)


def test_bad_anchor_config_names_the_value():
    with pytest.raises(ValueError, match="min_level=5, max_level=4"):
        AnchorConfig(min_level=5, max_level=4)


# ---------------------------------------------------------------------------
# box coder
# ---------------------------------------------------------------------------


def random_boxes(count: int, generator: torch.Generator) -> torch.Tensor:
    xy = torch.rand(count, 2, generator=generator) * 100
    wh = torch.rand(count, 2, generator=generator) * 60 + 2
    return torch.cat((xy, xy + wh), dim=1)


def test_encode_decode_round_trip():
    generator = torch.Generator().manual_seed(0)
    boxes, anchors = random_boxes(500, generator), random_boxes(500, generator)
    deltas = encode(boxes, anchors)
    assert torch.allclose(decode(deltas, anchors), boxes, atol=1e-4)
    assert torch.allclose(encode(decode(deltas, anchors), anchors), deltas, atol=1e-4)


def test_decode_clamps_huge_scale():
    anchor = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    box = decode(torch.tensor([[0.0, 0.0, 1e4, 1e4]]), anchor)
    width, height = sizes(box)
    assert torch.isfinite(box).all()
    assert math.isclose(float(width), 10 * math.exp(MAX_LOG_SCALE), rel_tol=1e-5)
    assert math.isclose(float(height), 10 * 1000 / 16, rel_tol=1e-5)


# ---------------------------------------------------------------------------
# labeller
# ---------------------------------------------------------------------------


def test_gt_equal_to_anchor_is_positive_with_zero_target(anchors):
    index = 16 * 9 * 5 + 9 * 7  # level 3, row 5, column 7, anchor 0
    box = anchors[index : index + 1].clone()
    cls_targets, box_targets, num_positives = AnchorLabeler().label(anchors, box, torch.tensor([2]))
    assert cls_targets[index] == 2
    assert torch.equal(box_targets[index], torch.zeros(4))
    assert int(num_positives) == int((cls_targets >= 0).sum()) >= 1
    # A far corner of the image never overlaps the box.
    far = (centres(anchors)[0] > 100) & (centres(anchors)[1] > 100) & (sizes(anchors)[0] < 40)
    assert far.any() and (cls_targets[far] == BACKGROUND).all()
    # Non-positive anchors carry zero box targets.
    assert (box_targets[cls_targets < 0] == 0).all()


def test_between_thresholds_is_ignored():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 22.0], [50.0, 50.0, 60.0, 60.0]])
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    cls_targets, _, num_positives = AnchorLabeler().label(anchors, box, torch.tensor([0]))
    # IoU: 1.0, 100/220 = 0.45 (between 0.4 and 0.5), 0.
    assert cls_targets.tolist() == [0, IGNORE, BACKGROUND]
    assert int(num_positives) == 1


def test_force_match_gives_a_small_box_its_best_anchor():
    anchors = torch.tensor([[0.0, 0.0, 32.0, 32.0], [100.0, 100.0, 132.0, 132.0]])
    box = torch.tensor([[4.0, 4.0, 12.0, 12.0]])  # IoU 64/1024 with the first anchor
    cls_targets, box_targets, _ = AnchorLabeler().label(anchors, box, torch.tensor([1]))
    assert cls_targets.tolist() == [1, BACKGROUND]
    assert torch.allclose(decode(box_targets[0], anchors[0]), box[0])
    cls_targets, _, _ = AnchorLabeler(force_match=False).label(anchors, box, torch.tensor([1]))
    assert cls_targets.tolist() == [BACKGROUND, BACKGROUND]


def test_empty_gt_is_all_background(anchors):
    cls_targets, box_targets, num_positives = AnchorLabeler().label(
        anchors, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)
    )
    assert (cls_targets == BACKGROUND).all() and (box_targets == 0).all() and int(num_positives) == 0


def test_labeler_rejects_one_based_class_ids(anchors):
    with pytest.raises(ValueError, match="0-based"):
        AnchorLabeler(num_classes=1).label(anchors, torch.tensor([[0.0, 0.0, 32.0, 32.0]]), torch.tensor([1]))


def test_batch_targets_stacks(anchors):
    cls_targets, box_targets, num_positives = batch_targets(
        anchors,
        [torch.tensor([[0.0, 0.0, 32.0, 32.0]]), torch.zeros(0, 4)],
        [torch.tensor([0]), torch.zeros(0, dtype=torch.int64)],
        AnchorLabeler(),
    )
    assert cls_targets.shape == (2, anchors.shape[0]) and box_targets.shape == (2, anchors.shape[0], 4)
    assert num_positives[0] >= 1 and num_positives[1] == 0


# ---------------------------------------------------------------------------
# post-processing
# ---------------------------------------------------------------------------


def detect(boxes, scores, classes, num_classes=2, **kwargs):
    """Run postprocess on hand-made detections: one anchor per box, deltas zero."""
    anchors = torch.tensor(boxes, dtype=torch.float32)
    logits = torch.full((1, len(boxes), num_classes), -20.0)
    for i, (score, cls) in enumerate(zip(scores, classes)):
        logits[0, i, cls] = math.log(score / (1 - score))
    return postprocess(logits, torch.zeros(1, len(boxes), 4), anchors, image_size=(100, 100), **kwargs)[0]


def test_nms_same_class_keeps_one_and_different_classes_keep_both():
    overlapping = [[10.0, 10.0, 50.0, 50.0], [11.0, 11.0, 51.0, 51.0]]
    same = detect(overlapping, [0.9, 0.8], [0, 0])
    assert same["scores"].tolist() == pytest.approx([0.9]) and same["classes"].tolist() == [0]
    different = detect(overlapping, [0.9, 0.8], [0, 1])
    assert different["scores"].tolist() == pytest.approx([0.9, 0.8]) and different["classes"].tolist() == [0, 1]


def test_score_threshold_and_max_detections():
    boxes = [[10.0 * i, 0.0, 10.0 * i + 8, 8.0] for i in range(6)]  # disjoint
    scores = [0.9, 0.8, 0.7, 0.3, 0.2, 0.1]
    kept = detect(boxes, scores, [0] * 6, score_threshold=0.25)
    assert kept["scores"].tolist() == pytest.approx([0.9, 0.8, 0.7, 0.3])
    capped = detect(boxes, scores, [0] * 6, max_detections=2)
    assert capped["scores"].tolist() == pytest.approx([0.9, 0.8])
    assert capped["boxes"].shape == (2, 4) and capped["classes"].dtype == torch.int64


def test_postprocess_recovers_perfect_predictions(anchors):
    gt_boxes = torch.tensor([[10.0, 20.0, 50.0, 70.0], [60.0, 30.0, 120.0, 90.0]])
    gt_classes = torch.tensor([2, 0])
    _cls_targets, box_targets, _ = AnchorLabeler().label(anchors, gt_boxes, gt_classes)
    # One confident anchor per box (its best, which the labeller force-matches); deltas = encode(gt).
    best = box_iou(gt_boxes, anchors).argmax(dim=1)
    logits = torch.full((1, anchors.shape[0], 3), -20.0)
    logits[0, best, gt_classes] = 20.0
    deltas = box_targets.unsqueeze(0)
    (result,) = postprocess(logits, deltas, anchors, image_size=IMAGE)
    order = result["classes"].argsort(descending=True)  # class 2 first, as gt
    assert result["classes"][order].tolist() == gt_classes.tolist()
    assert torch.allclose(result["boxes"][order], gt_boxes, atol=1e-4)


def test_postprocess_clips_and_handles_no_detections():
    anchors = torch.tensor([[-20.0, -20.0, 20.0, 20.0]])
    (clipped,) = postprocess(torch.full((1, 1, 1), 5.0), torch.zeros(1, 1, 4), anchors, image_size=(10, 30))
    assert clipped["boxes"].tolist() == [[0.0, 0.0, 20.0, 10.0]]
    (empty,) = postprocess(torch.full((1, 1, 1), -5.0), torch.zeros(1, 1, 4), anchors, image_size=(10, 30))
    assert empty["boxes"].shape == (0, 4) and empty["scores"].shape == (0,) and empty["classes"].shape == (0,)


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------


def test_focal_loss_hand_computed():
    alpha, gamma = 0.25, 2.0
    logits = torch.tensor([[[0.0, 2.0], [1.0, -1.0], [3.0, 3.0]]])  # (1, 3 anchors, 2 classes)
    targets = torch.tensor([[0, BACKGROUND, IGNORE]])
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731

    def term(x: float, y: int) -> float:
        p_t = sigmoid(x) if y else 1 - sigmoid(x)
        return -(alpha if y else 1 - alpha) * (1 - p_t) ** gamma * math.log(p_t)

    expected = term(0.0, 1) + term(2.0, 0) + term(1.0, 0) + term(-1.0, 0)  # the ignored anchor adds nothing
    assert math.isclose(term(0.0, 1), 0.25 * 0.25 * math.log(2), rel_tol=1e-12)
    loss = focal_loss(logits, targets, alpha, gamma)
    assert loss.shape == (1,) and math.isclose(float(loss), expected, rel_tol=1e-5)


def test_class_mask_zeroes_gradient_of_unannotated_class(anchors):
    """Image 0 comes from a dataset that labels only class 0; its unlabelled class-1 object is background."""
    car = torch.tensor([[10.0, 10.0, 42.0, 42.0]])  # labelled class 0
    stop_sign = torch.tensor([[70.0, 70.0, 102.0, 102.0]])  # class 1, present but not annotated
    cls_targets, _, _ = AnchorLabeler().label(anchors, car, torch.tensor([0]))
    covering = box_iou(stop_sign, anchors)[0] >= 0.5
    assert covering.any() and (cls_targets[covering] == BACKGROUND).all()

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, anchors.shape[0], 2, generator=generator).requires_grad_()
    mask = torch.tensor([[True, False]])
    focal_loss(logits, cls_targets.unsqueeze(0), class_mask=mask).sum().backward()
    assert torch.count_nonzero(logits.grad[0, :, 1]) == 0
    counted = cls_targets != IGNORE
    assert (logits.grad[0, counted, 0] != 0).all() and (logits.grad[0, ~counted, 0] == 0).all()

    logits.grad = None
    focal_loss(logits, cls_targets.unsqueeze(0)).sum().backward()
    assert (logits.grad[0, covering, 1] != 0).all()


def test_class_mask_is_per_image():
    logits = torch.zeros(2, 4, 2, requires_grad=True)
    targets = torch.full((2, 4), BACKGROUND)
    mask = torch.tensor([[True, False], [False, True]])
    focal_loss(logits, targets, class_mask=mask).sum().backward()
    assert (logits.grad[0, :, 1] == 0).all() and (logits.grad[1, :, 0] == 0).all()
    assert (logits.grad[0, :, 0] != 0).all() and (logits.grad[1, :, 1] != 0).all()


def test_one_class_trains_single_logit_toward_object_and_background():
    """C = 1: no background class; the one logit goes up on positives and down on background."""
    targets = torch.tensor([[0, 0, BACKGROUND, BACKGROUND, BACKGROUND, IGNORE]])
    logits = torch.zeros(1, 6, 1, requires_grad=True)
    optimiser = torch.optim.SGD([logits], lr=2.0)
    loss_fn = DetectionLoss()
    zeros = torch.zeros(1, 6, 4)
    for _ in range(20):
        optimiser.zero_grad()
        loss_fn(logits, zeros, targets, zeros)["loss"].backward()
        optimiser.step()
    probability = torch.sigmoid(logits.detach())[0, :, 0]
    assert (probability[:2] > 0.5).all()
    assert (probability[2:5] < 0.5).all()
    assert probability[5] == 0.5  # ignored: untouched


def test_box_loss_kinds_and_positives_only():
    deltas = torch.tensor([[[0.05, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]]])
    targets = torch.zeros_like(deltas)
    positives = torch.tensor([[True, True, False]])
    huber = box_loss(deltas, targets, positives, delta=0.1)
    assert math.isclose(float(huber), 0.5 * 0.05**2 + 0.1 * (1.0 - 0.05), rel_tol=1e-5)
    smooth = box_loss(deltas, targets, positives, kind="smooth_l1", delta=0.1)
    assert math.isclose(float(smooth), float(huber) / 0.1, rel_tol=1e-5)
    with pytest.raises(ValueError, match="valid kinds"):
        box_loss(deltas, targets, positives, kind="l2")  # type: ignore[arg-type]


def test_detection_loss_normalises_by_positives_plus_one(anchors):
    cls_targets, box_targets, num_positives = batch_targets(
        anchors,
        [torch.tensor([[0.0, 0.0, 32.0, 32.0]]), torch.tensor([[40.0, 40.0, 100.0, 90.0]])],
        [torch.tensor([0]), torch.tensor([1])],
        AnchorLabeler(),
    )
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, anchors.shape[0], 2, generator=generator)
    deltas = torch.randn(2, anchors.shape[0], 4, generator=generator) * 0.1
    out = DetectionLoss()(logits, deltas, cls_targets, box_targets, num_positives)
    total = float(num_positives.sum()) + 1
    assert math.isclose(float(out["class_loss"]), float(focal_loss(logits, cls_targets).sum()) / total, rel_tol=1e-5)
    raw_box = float(box_loss(deltas, box_targets, cls_targets >= 0).sum())
    assert math.isclose(float(out["box_loss"]), raw_box / (4 * total), rel_tol=1e-5)
    assert math.isclose(float(out["loss"]), float(out["class_loss"]) + 50 * float(out["box_loss"]), rel_tol=1e-5)
    # num_positives defaults to the count of positive anchors.
    again = DetectionLoss()(logits, deltas, cls_targets, box_targets)
    assert torch.allclose(again["loss"], out["loss"])


def test_detection_loss_with_zero_positives_is_finite(anchors):
    logits = torch.randn(2, anchors.shape[0], 3, requires_grad=True)
    deltas = torch.randn(2, anchors.shape[0], 4, requires_grad=True)
    cls_targets = torch.full((2, anchors.shape[0]), BACKGROUND)
    out = DetectionLoss()(logits, deltas, cls_targets, torch.zeros(2, anchors.shape[0], 4), torch.zeros(2))
    assert all(torch.isfinite(value) for value in out.values())
    assert out["box_loss"].item() == 0.0
    out["loss"].backward()
    assert torch.isfinite(logits.grad).all() and (deltas.grad == 0).all()
