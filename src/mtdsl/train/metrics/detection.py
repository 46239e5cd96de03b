"""Detection metrics: COCO box AP and the thesis' pets metric (the most confident box's accuracy).

``coco_evaluate`` hands boxes to pycocotools' ``COCOeval`` through an
in-memory ground truth, so the numbers are the official COCO ones (101-point
interpolated AP averaged over IoU 0.50:0.05:0.95).

>>> truth = [{"boxes": [[10, 10, 50, 50]], "classes": [0], "image_size": (64, 64)}]
>>> found = [{"boxes": [[10, 10, 50, 50]], "scores": [0.9], "classes": [0]}]
>>> coco_evaluate(truth, found, ["cat"])["AP"]
1.0
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mtdsl.train.data.box_mask_targets import unletterbox_boxes
from mtdsl.train.metrics.metric import NAN, TaskMetric, _ratio

__all__ = [
    "DETECTION_REPORTED",
    "SUMMARY",
    "DetectionMetric",
    "coco_evaluate",
    "most_confident_box_accuracy",
]

#: The names of ``COCOeval.stats``, in order.
SUMMARY = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _array(value: Any, columns: int | None = None, dtype: Any = np.float64) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value if value is not None else [], dtype=dtype)
    return array.reshape(-1, columns) if columns else array.reshape(-1)


def _image_entry(image_id: int, truth: dict[str, Any], boxes: np.ndarray) -> dict[str, Any]:
    size = truth.get("image_size")
    if size is None:  # COCOeval never reads the size; any that holds the boxes will do
        height = math.ceil(boxes[:, 3].max()) if len(boxes) else 1
        width = math.ceil(boxes[:, 2].max()) if len(boxes) else 1
    elif isinstance(size, int):
        height = width = size
    else:
        height, width = (int(v) for v in size)
    return {"id": image_id, "width": width, "height": height}


def _image_ids(ground_truth: Sequence[dict[str, Any]]) -> list[Any]:
    """The images' own ids (``image_id``) when every image has one and no two share it, else 1, 2, 3, ….

    COCOeval's order of images breaks ties between equal scores, so the file's
    ids give exactly the numbers pycocotools gives on the file; images of
    several files (or without a file) are numbered instead.
    """
    given = [truth.get("image_id") for truth in ground_truth]
    if all(value is not None for value in given) and len(set(given)) == len(given):
        return given
    return list(range(1, len(ground_truth) + 1))


def _coco_truth(ground_truth: Sequence[dict[str, Any]], class_names: Sequence[str], image_ids: Sequence[Any]) -> Any:
    from pycocotools.coco import COCO

    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for n, (image_id, truth) in enumerate(zip(image_ids, ground_truth)):
        boxes = _array(truth["boxes"], 4)
        classes = _array(truth["classes"], dtype=np.int64)
        if len(boxes) != len(classes):
            raise ValueError(f"ground truth {n} has {len(boxes)} boxes but {len(classes)} classes")
        areas = _array(truth.get("areas"))
        crowd = _array(truth.get("crowd"), dtype=bool)
        for what, values in (("areas", areas), ("crowd flags", crowd)):
            if len(values) and len(values) != len(boxes):
                raise ValueError(f"ground truth {n} has {len(boxes)} boxes but {len(values)} {what}")
        images.append(_image_entry(image_id, truth, boxes))
        for g, ((x0, y0, x1, y1), label) in enumerate(zip(boxes.tolist(), classes.tolist())):
            if not 0 <= label < len(class_names):
                raise ValueError(f"ground-truth class {label} is outside 0..{len(class_names) - 1}")
            # Annotation ids start at 1: COCOeval treats id 0 as "unmatched".
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": float(areas[g]) if len(areas) else (x1 - x0) * (y1 - y0),
                    "iscrowd": int(crowd[g]) if len(crowd) else 0,
                }
            )
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
    coco.createIndex()
    return coco


def _coco_detections(
    predictions: Sequence[dict[str, Any]], class_count: int, image_ids: Sequence[Any]
) -> list[dict[str, Any]]:
    detections = []
    for n, (image_id, found) in enumerate(zip(image_ids, predictions)):
        boxes = _array(found["boxes"], 4)
        scores = _array(found["scores"])
        classes = _array(found["classes"], dtype=np.int64)
        if not len(boxes) == len(scores) == len(classes):
            raise ValueError(
                f"prediction {n} has {len(boxes)} boxes, {len(scores)} scores and {len(classes)} classes"
            )
        for (x0, y0, x1, y1), score, label in zip(boxes.tolist(), scores.tolist(), classes.tolist()):
            if not 0 <= label < class_count:
                raise ValueError(f"predicted class {label} is outside 0..{class_count - 1}")
            detections.append(
                {"image_id": image_id, "category_id": label + 1, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score}
            )
    return detections


def coco_evaluate(
    ground_truth: Sequence[dict[str, Any]],
    predictions: Sequence[dict[str, Any]],
    class_names: Sequence[str],
) -> dict[str, float]:
    """COCO box AP of ``predictions`` against ``ground_truth``, image by image.

    Args:
        ground_truth: per image ``{"boxes": (G, 4) (x0, y0, x1, y1), "classes":
            (G,) indices into class_names, "image_size": (height, width)}``
            (tensors, arrays or lists; ``image_size`` may be left out), and
            optionally ``"crowd": (G,) bool`` (crowd regions: a detection that
            falls on one of its class is ignored, neither right nor wrong),
            ``"areas": (G,)`` (the areas that pick small, medium and large
            objects; default the boxes'; COCO files give the segmentation's)
            and ``"image_id"`` (the image's id in its file). An image with no
            boxes is a negative: any box found there is a false positive.
        predictions: per image, in the same order, ``{"boxes": (K, 4),
            "scores": (K,), "classes": (K,)}``. COCOeval keeps the 100 best-scoring per image.
        class_names: the class names, in index order.

    Returns:
        ``AP`` (mean over IoU 0.50:0.05:0.95), ``AP50``, ``AP75``, ``APs``/``APm``/``APl``
        (small/medium/large objects), ``AR1``/``AR10``/``AR100``, ``ARs``/``ARm``/``ARl``,
        and ``AP/<class>`` for each class, all in [0, 1]. A class with no
        ground-truth box is left out of the means (its boxes count for
        nothing) and its ``AP/<class>`` is ``nan``; so is any value with no
        ground truth at all to average over (e.g. ``APs`` with no small
        objects). With ground truth but no predictions every value is 0.0.

    Raises:
        ValueError: ground truth and predictions differ in length, or a class index is out of range.
    """
    from pycocotools.cocoeval import COCOeval

    if len(ground_truth) != len(predictions):
        raise ValueError(f"{len(ground_truth)} ground-truth images but {len(predictions)} predictions")
    class_names = list(class_names)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and the summary table
        image_ids = _image_ids(ground_truth)
        truth = _coco_truth(ground_truth, class_names, image_ids)
        detections = _coco_detections(predictions, len(class_names), image_ids)
        # a class whose only boxes are crowds has nothing to find: COCOeval leaves it out too
        has_truth = {ann["category_id"] - 1 for ann in truth.dataset["annotations"] if not ann["iscrowd"]}
        if not detections:
            results = {name: 0.0 if has_truth else NAN for name in SUMMARY}
            results.update({f"AP/{name}": 0.0 if i in has_truth else NAN for i, name in enumerate(class_names)})
            return results
        evaluator = COCOeval(truth, truth.loadRes(detections), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # COCOeval writes -1 for "nothing to average over".
    results = {name: _clean(value) for name, value in zip(SUMMARY, evaluator.stats)}
    # precision: [IoU thresholds, recall points, classes, area ranges, max detections]; area "all", 100 boxes.
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    for i, name in enumerate(class_names):
        values = precision[:, :, i]
        results[f"AP/{name}"] = _clean(values[values > -1].mean()) if (values > -1).any() else NAN
    return results


def _clean(value: float) -> float:
    """``nan`` for COCOeval's -1; otherwise rounded to 12 places, which turns the
    ``1 - 2e-16`` that its ``tp / (tp + fp + eps)`` gives for perfect precision into 1.0."""
    return round(float(value), 12) if value >= 0 else NAN


def most_confident_box_accuracy(
    predictions: Sequence[dict[str, Any]],
    ground_truth: Sequence[dict[str, Any]],
    iou_threshold: float = 0.5,
) -> float:
    """The thesis' pets detection metric (§6.5, Table 6.5): how often the most confident box is right.

    For each image with at least one ground-truth box, take the predicted box
    with the highest score. It counts as right when its class is the class of
    a ground-truth box it overlaps with IoU ``>= iou_threshold``. The thesis
    only says "correct classifications in the most confidently detected box";
    the IoU condition keeps a right class on the wrong spot from counting.
    An image with no predicted box counts as wrong; images without
    ground-truth boxes are left out.

    Args:
        predictions: per image ``{"boxes": (K, 4), "scores": (K,), "classes": (K,)}``.
        ground_truth: per image ``{"boxes": (G, 4), "classes": (G,)}``, same order.
        iou_threshold: the overlap a box needs with a ground-truth box of its class.

    Returns:
        The fraction in [0, 1]; ``nan`` when no image has a ground-truth box.

    >>> truth = [{"boxes": [[0, 0, 10, 10]], "classes": [1]}]
    >>> found = [{"boxes": [[0, 0, 10, 10], [0, 0, 9, 9]], "scores": [0.4, 0.8], "classes": [1, 0]}]
    >>> most_confident_box_accuracy(found, truth)  # the 0.8 box says class 0
    0.0
    """
    from torchvision.ops import box_iou  # seconds to import; a detection run has it loaded already

    if len(ground_truth) != len(predictions):
        raise ValueError(f"{len(ground_truth)} ground-truth images but {len(predictions)} predictions")
    right = counted = 0
    for found, truth in zip(predictions, ground_truth):
        true_boxes = torch.from_numpy(_array(truth["boxes"], 4))
        if len(true_boxes) == 0:
            continue
        counted += 1
        scores = torch.from_numpy(_array(found["scores"]))
        if len(scores) == 0:
            continue
        best = int(scores.argmax())
        label = int(_array(found["classes"], dtype=np.int64)[best])
        same_class = torch.from_numpy(_array(truth["classes"], dtype=np.int64) == label)
        if not same_class.any():
            continue
        box = torch.from_numpy(_array(found["boxes"], 4)[best : best + 1])
        right += bool((box_iou(box, true_boxes[same_class]) >= iou_threshold).any())
    return _ratio(right, counted)


#: The COCO summary values a detect task reports besides per-class AP (the rest stay out of the tables).
DETECTION_REPORTED = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")


class DetectionMetric(TaskMetric):
    """COCO box AP of a detect task, from decoded detections (:meth:`DetectionSetup.detections`).

    ``update(detections, targets)`` takes the batch's per-image ``{"boxes", "scores",
    "classes"}`` and its targets ``{"boxes": N × (G, 4), "classes": N × (G,),
    "annotated": (N, C) bool, "original": N × dict}`` (:func:`~mtdsl.train.data.datasets.collate`).
    Detections of a class an image's dataset does not annotate are dropped before
    scoring: its images say nothing about that class, so such a box is neither right nor wrong.

    With ``original`` (:meth:`~mtdsl.train.data.box_mask_targets.BoxTarget.original`) the
    detections go back to the image's own pixels (as ``mtdsl predict`` writes
    them) and are scored against the image's annotations there, crowd regions
    as ignored areas and the file's ``area`` picking small, medium and large:
    the numbers pycocotools' ``COCOeval`` gives on the original file. Without
    it the letterboxed boxes are compared as they are.

    ``compute()`` runs :func:`coco_evaluate` over everything seen and adds the
    thesis' pets metric (:func:`most_confident_box_accuracy`, crowds left out) as
    ``top_box_accuracy``. Main metric: ``AP``. Unlike the counting metrics it
    keeps every box until ``compute()`` (on the CPU).
    """

    main = "AP"
    accumulated = ("truth", "found")

    def reset(self) -> None:
        self.truth: list[dict[str, Any]] = []
        self.found: list[dict[str, np.ndarray]] = []

    def update(self, outputs: Sequence[dict[str, torch.Tensor]], targets: dict[str, Any]) -> None:
        annotated = targets.get("annotated")
        originals = targets.get("original")
        for n, detections in enumerate(outputs):
            labels = detections["classes"].detach().cpu()
            keep = torch.ones_like(labels, dtype=torch.bool)
            if annotated is not None and len(labels):
                keep = annotated[n].cpu()[labels]
            boxes = detections["boxes"].detach().cpu()[keep].numpy()
            scores = detections["scores"].detach().cpu()[keep].numpy()
            classes = labels[keep].numpy()
            if originals is None:
                truth: dict[str, Any] = {
                    "boxes": targets["boxes"][n].detach().cpu().numpy(),
                    "classes": targets["classes"][n].detach().cpu().numpy(),
                }
            else:
                original = originals[n]
                boxes, inside = unletterbox_boxes(boxes.astype(np.float64), original["scale"], original["size"],
                                                  original.get("flipped", False))
                scores, classes = scores[inside], classes[inside]
                width, height = original["size"]
                truth = {key: original[key] for key in ("boxes", "classes", "areas", "crowd", "image_id")}
                truth["image_size"] = (height, width)
            self.found.append({"boxes": boxes, "scores": scores, "classes": classes})
            self.truth.append(truth)

    def compute(self) -> dict[str, float]:
        if not self.truth:
            results = {name: NAN for name in DETECTION_REPORTED}
            return {**results, "top_box_accuracy": NAN}
        scores = coco_evaluate(self.truth, self.found, self.class_names)
        results = {name: scores[name] for name in DETECTION_REPORTED}
        results["top_box_accuracy"] = most_confident_box_accuracy(self.found, [_learnt(t) for t in self.truth])
        results.update({key: value for key, value in scores.items() if key.startswith("AP/")})
        return results


def _learnt(truth: dict[str, Any]) -> dict[str, Any]:
    """An image's ground truth without its crowd regions and boxes with no area (what training learns from)."""
    boxes = _array(truth["boxes"], 4)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if truth.get("crowd") is not None:
        keep &= ~_array(truth["crowd"], dtype=bool)
    return {"boxes": boxes[keep], "classes": _array(truth["classes"], dtype=np.int64)[keep]}
