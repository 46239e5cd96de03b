"""The training side of ``keypoints``: the points its datasets label, OKS AP, and its points in a run's pictures.

Its targets (:class:`~mtdsl.train.data.point_targets.PointTarget`) are read by the formats that carry
points. Importing it registers its entries in the training layer's tables (:mod:`mtdsl.train.kinds` does).

Its metric is COCO keypoint AP: ``oks_evaluate`` hands the points to
``COCOeval(iouType="keypoints")`` through an in-memory ground truth, so the numbers are the
official COCO keypoint ones: AP averaged over object keypoint similarity (OKS) thresholds
0.50:0.05:0.95, where ``OKS = mean_i exp(-d_i² / (2 s² k_i²))`` over the labelled points, ``s²``
the instance's area and ``k_i = 2 σ_i``. The per-point ``σ`` are COCO's for the 17 COCO person
keypoints and :data:`UNIFORM_SIGMA` for every point otherwise.

>>> truth = [{"keypoints": [[[10, 10, 2], [30, 10, 2]]], "areas": [400], "boxes": [[10, 10, 30, 30]]}]
>>> found = [{"points": [[10, 10], [30, 10]], "scores": [0.9, 0.8]}]
>>> oks_evaluate(truth, found, ["left", "right"])["AP"]
1.0
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mtdsl.kinds.keypoints.kind import KEYPOINTS
from mtdsl.nn.heads.heatmap import decode_heatmaps
from mtdsl.train.data.box_mask_targets import object_array
from mtdsl.train.data.examples import LABELLED
from mtdsl.train.data.joint import IS_UNKNOWN, UNKNOWN_TARGETS
from mtdsl.train.data.point_targets import PointTarget, PointTruth, unletterbox_points
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.metrics.metric import NAN, TaskMetric, register_metric
from mtdsl.train.run.showcase import DRAWN_SCORE, SHOWN, Shown

__all__ = ["COCO_PERSON_POINTS", "COCO_SIGMAS", "KEYPOINT_SUMMARY", "UNIFORM_SIGMA", "KeypointsMetric",
           "oks_evaluate", "sigmas_for"]

#: The names of ``COCOeval.stats`` for keypoints, in order.
KEYPOINT_SUMMARY = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
#: What a keypoints task reports (the rest stay out of the tables).
KEYPOINT_REPORTED = ("AP", "AP50", "AP75", "APm", "APl", "AR")

#: COCO's 17 person keypoints, in the order of its ``person_keypoints`` files.
COCO_PERSON_POINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)
#: pycocotools' per-point sigmas of those 17 points (``Params.kpt_oks_sigmas``).
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0
#: The sigma of every point of another set: between COCO's face points (0.025-0.035) and its limbs' (0.062-0.107).
UNIFORM_SIGMA = 0.05


def sigmas_for(names: Sequence[str]) -> np.ndarray:
    """``(K,)`` OKS sigmas: COCO's for its 17 person keypoints, by name; :data:`UNIFORM_SIGMA` for any other point."""
    coco = dict(zip(COCO_PERSON_POINTS, COCO_SIGMAS.tolist()))
    return np.array([coco.get(name, UNIFORM_SIGMA) for name in names], dtype=np.float64)


def _array(value: Any, *shape: int) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value if value is not None else [], dtype=np.float64).reshape(-1, *shape)


def _coco_truth(ground_truth: Sequence[dict[str, Any]], names: Sequence[str], image_ids: Sequence[Any]) -> Any:
    from pycocotools.coco import COCO

    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for n, (image_id, truth) in enumerate(zip(image_ids, ground_truth)):
        keypoints = _array(truth["keypoints"], len(names), 3)
        areas, boxes = _array(truth["areas"]), _array(truth["boxes"], 4)
        crowd = _array(truth["crowd"]).astype(bool) if truth.get("crowd") is not None else np.zeros(len(areas), bool)
        if not len(keypoints) == len(areas) == len(boxes) == len(crowd):
            raise ValueError(f"ground truth {n} has {len(keypoints)} instances but {len(areas)} areas, "
                             f"{len(boxes)} boxes and {len(crowd)} crowd flags")
        height, width = truth.get("image_size") or (1, 1)
        images.append({"id": image_id, "width": int(width), "height": int(height)})
        for instance, area, (x0, y0, x1, y1), is_crowd in zip(keypoints, areas, boxes.tolist(), crowd):
            annotations.append({  # ids from 1: COCOeval takes 0 for "unmatched"
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": int(is_crowd),
                "keypoints": instance.reshape(-1).tolist(), "num_keypoints": int((instance[:, 2] > 0).sum()),
                "area": float(area), "bbox": [x0, y0, x1 - x0, y1 - y0],
            })
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations,
                    "categories": [{"id": 1, "name": "object", "keypoints": list(names), "skeleton": []}]}
    coco.createIndex()
    return coco


def _image_ids(ground_truth: Sequence[dict[str, Any]]) -> list[Any]:
    """The images' own ids when every image has one and no two share it, else 1, 2, 3, … (as box AP's)."""
    given = [truth.get("image_id") for truth in ground_truth]
    if all(value is not None for value in given) and len(set(given)) == len(given):
        return given
    return list(range(1, len(ground_truth) + 1))


def oks_evaluate(ground_truth: Sequence[dict[str, Any]], predictions: Sequence[dict[str, Any]],
                 names: Sequence[str], sigmas: Sequence[float] | None = None) -> dict[str, float]:
    """COCO keypoint AP of one instance of points per image against every instance of the image.

    Args:
        ground_truth: per image ``{"keypoints": (G, K, 3) (x, y, v), "areas": (G,), "boxes": (G, 4)
            (x0, y0, x1, y1)}`` and optionally ``"crowd": (G,)``, ``"image_id"`` and ``"image_size"``.
            An instance that labels no point (every ``v`` 0) is ignored, as COCOeval does.
        predictions: per image, in the same order, ``{"points": (K, 2), "scores": (K,)}``: one
            instance, scored by its points' mean score.
        names: the point names, in index order.
        sigmas: ``(K,)`` OKS sigmas; default :func:`sigmas_for` the names.

    Returns:
        ``AP`` (mean over OKS 0.50:0.05:0.95), ``AP50``, ``AP75``, ``APm``/``APl`` (medium/large
        instances), ``AR``, ``AR50``, ``AR75``, ``ARm``, ``ARl`` in [0, 1]; ``nan`` where there is
        nothing to average over (no labelled instance).
    """
    from pycocotools.cocoeval import COCOeval

    if len(ground_truth) != len(predictions):
        raise ValueError(f"{len(ground_truth)} ground-truth images but {len(predictions)} predictions")
    spreads = sigmas_for(names) if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if len(spreads) != len(names):
        raise ValueError(f"{len(spreads)} OKS sigmas for {len(names)} points")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and the summary table
        image_ids = _image_ids(ground_truth)
        truth = _coco_truth(ground_truth, names, image_ids)
        results = []
        for image_id, found in zip(image_ids, predictions):
            points, scores = _array(found["points"], 2), _array(found["scores"])
            flat = np.concatenate([points, np.ones((len(points), 1))], axis=1).reshape(-1).tolist()
            results.append({"image_id": image_id, "category_id": 1, "keypoints": flat,
                            "score": float(scores.mean()) if len(scores) else 0.0})
        if not any(ann["num_keypoints"] for ann in truth.dataset["annotations"]):
            return {name: NAN for name in KEYPOINT_SUMMARY}
        evaluator = COCOeval(truth, truth.loadRes(results), "keypoints")
        evaluator.params.kpt_oks_sigmas = spreads
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # COCOeval writes -1 for "nothing to average over"; rounding turns its 1 - 2e-16 into 1.0
    return {name: round(float(value), 12) if value >= 0 else NAN
            for name, value in zip(KEYPOINT_SUMMARY, evaluator.stats)}


class KeypointsMetric(TaskMetric):
    """COCO keypoint AP (OKS) of a keypoints task, from its heatmaps.

    ``update(heatmaps, targets)`` decodes each image's points (:func:`~mtdsl.nn.heads.heatmap.decode_heatmaps`),
    maps them back to the image's own pixels through its letterbox and keeps them with the image's
    instances (``targets["original"]``, :meth:`~mtdsl.train.data.point_targets.PointTarget.original`);
    ``compute()`` runs :func:`oks_evaluate` over everything seen. Main metric: ``AP``.
    """

    main = "AP"
    accumulated = ("truth", "found")

    def reset(self) -> None:
        self.truth: list[dict[str, Any]] = []
        self.found: list[dict[str, np.ndarray]] = []

    def update(self, outputs: torch.Tensor, targets: dict[str, Any]) -> None:
        canvas = targets["canvas"].detach().cpu()
        for n, original in enumerate(targets["original"]):
            width, height = (int(v) for v in canvas[n].tolist())
            points, scores = decode_heatmaps(outputs[n : n + 1].detach().float().cpu(), (height, width))
            moved = unletterbox_points(points[0].numpy(), original["scale"], original["flipped"], original["size"][0])
            self.found.append({"points": moved, "scores": scores[0].numpy()})
            image_width, image_height = original["size"]
            self.truth.append({"keypoints": original["instances"], "image_size": (image_height, image_width),
                               **{key: original[key] for key in ("areas", "boxes", "crowd", "image_id")}})

    def compute(self) -> dict[str, float]:
        if not self.truth:
            return {name: NAN for name in KEYPOINT_REPORTED}
        scores = oks_evaluate(self.truth, self.found, self.class_names)
        return {name: scores[name] for name in KEYPOINT_REPORTED}


register_metric(KEYPOINTS.name)(KeypointsMetric)


@LABELLED.register(KEYPOINTS.name)
def labelled(targets: np.ndarray, count: int) -> np.ndarray:
    """The points the split's dataset has (every target of a split says the same)."""
    found = np.zeros(count, dtype=bool)
    for target in targets[:1]:
        found |= target.annotated
    return found


@SHOWN.register(KEYPOINTS.name)
def show(picture: Shown, labels: TaskLabels, output: Any, decoder: Any) -> None:
    """The picture's confident points (over :data:`DRAWN_SCORE`), each in its point's colour, after those of
    the stream's keypoints tasks before it."""
    n, zoom = picture.index, picture.zoom
    points, scores = decode_heatmaps(output[n : n + 1], picture.image_size)
    sure = (scores[0] >= DRAWN_SCORE).cpu().numpy()
    spots = np.where(sure[:, None], points[0].cpu().numpy() * zoom, np.nan)  # a nan point is not drawn
    earlier = picture.drawing.get("points")
    picture.drawing["points"] = spots if earlier is None else np.concatenate([earlier, spots])


@UNKNOWN_TARGETS.register(KEYPOINTS.name)
def unknown(like: np.ndarray, count: int) -> np.ndarray:
    """Every point unlabelled and absent from the dataset: the heatmap loss has no point of it."""
    names = like[0].names
    points = len(names)

    def nothing() -> PointTarget:
        truth = PointTruth(None, np.zeros((0, points, 3)), np.zeros(0), np.zeros((0, 4)), np.zeros(0, dtype=bool))
        return PointTarget(np.zeros((points, 2), dtype=np.float32), np.zeros(points, dtype=bool), names,
                           np.zeros(points, dtype=bool), truth)

    return object_array([nothing() for _ in range(count)])


@IS_UNKNOWN.register(KEYPOINTS.name)
def is_unknown(targets: np.ndarray) -> np.ndarray:
    return np.array([not target.annotated.any() for target in targets], dtype=bool)
