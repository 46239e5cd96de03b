"""Detection inside an exported model: decoding, class-wise NMS and the best boxes, at fixed shapes.

:class:`Detections` computes what :func:`mtdsl.detection.boxes.postprocess`
computes (the same candidates, thresholds and NMS), but returns fixed-size
tensors a deployed graph can have: per image the ``max_detections`` best boxes,
padded, and how many are real.

The one step with a data-dependent size, NMS itself, is the custom operator
``mtdsl::nms_keep``: in PyTorch it runs ``torchvision.ops.batched_nms`` per image,
exactly as training's evaluation does, and says which candidates survive (a
mask, so its shape is fixed); in ONNX it becomes the standard
``NonMaxSuppression`` operator, class by class (:func:`nms_keep_onnx`). A
``torch.export`` or TorchScript program that holds it needs the operator
registered before it is loaded: ``import mtdsl.export.nms``.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import batched_nms, clip_boxes_to_image

from mtdsl.detection.bench import DetectionSetup
from mtdsl.detection.boxes import PRE_NMS_TOP_K, decode


@torch.library.custom_op("mtdsl::nms_keep", mutates_args=())
def nms_keep(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_threshold: float,
             score_threshold: float, num_classes: int) -> torch.Tensor:
    """Which candidates class-wise NMS keeps: ``(N, K)`` bool from boxes ``(N, K, 4)``, scores and classes ``(N, K)``.

    A candidate scoring at or below ``score_threshold`` is never kept; the others go through
    ``torchvision.ops.batched_nms`` per image, as in :func:`mtdsl.detection.boxes.postprocess`.
    ``num_classes`` is for the ONNX form, which runs NMS class by class.
    """
    keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    for n in range(scores.shape[0]):
        candidates = (scores[n] > score_threshold).nonzero().flatten()
        kept = batched_nms(boxes[n, candidates], scores[n, candidates], classes[n, candidates], iou_threshold)
        keep[n, candidates[kept]] = True
    return keep


@nms_keep.register_fake
def _(boxes, scores, classes, iou_threshold, score_threshold, num_classes):
    return torch.empty(scores.shape, dtype=torch.bool, device=scores.device)


def nms_keep_onnx(boxes, scores, classes, iou_threshold: float, score_threshold: float, num_classes: int):
    """``mtdsl::nms_keep`` in ONNX: ``NonMaxSuppression`` over each class's scores, then a mask of the kept."""
    from onnx import TensorProto
    from onnxscript import opset18 as op

    class_ids = op.Constant(value_ints=list(range(num_classes)))
    of_class = op.Equal(op.Unsqueeze(classes, [1]), op.Reshape(class_ids, op.Constant(value_ints=[1, -1, 1])))
    below = op.CastLike(op.Constant(value_float=-1.0), scores)  # other classes' candidates score below any threshold
    per_class = op.Where(of_class, op.Unsqueeze(scores, [1]), below)  # (N, C, K)
    selected = op.NonMaxSuppression(
        boxes, per_class,
        op.Reshape(op.Gather(op.Shape(scores), op.Constant(value_int=1)), op.Constant(value_ints=[1])),
        op.Constant(value_floats=[iou_threshold]), op.Constant(value_floats=[score_threshold]),
    )  # (S, 3): image, class, candidate
    image_and_candidate = op.Gather(selected, op.Constant(value_ints=[0, 2]), axis=1)
    ones = op.Expand(op.Constant(value_int=1), op.Gather(op.Shape(selected), op.Constant(value_ints=[0])))
    zeros = op.CastLike(op.ConstantOfShape(op.Shape(scores)), ones)
    keep = op.ScatterND(zeros, image_and_candidate, ones)
    return op.Cast(keep, to=TensorProto.BOOL)


class Detections(nn.Module):
    """A detect task's raw outputs as ``boxes (N, M, 4)``, ``scores (N, M)``, ``classes (N, M)`` and ``count (N,)``.

    ``M`` is the task's ``max_detections``. Row ``i < count[n]`` of image ``n`` is its ``i``-th best
    detection (boxes ``(x0, y0, x1, y1)`` in input pixels); the rows after it are padding: zero
    boxes and scores, class ``-1``. The real rows equal :meth:`DetectionSetup.detections`.
    """

    anchors: torch.Tensor  # a buffer

    def __init__(self, setup: DetectionSetup) -> None:
        super().__init__()
        self.setup = setup
        self.register_buffer("anchors", setup.anchor_boxes(), persistent=False)

    def forward(self, class_logits: torch.Tensor, box_deltas: torch.Tensor) -> tuple[torch.Tensor, ...]:
        setup = self.setup
        num_classes = class_logits.shape[-1]
        scores = torch.sigmoid(class_logits.float()).flatten(1)  # (N, A·C), pair = anchor·C + class
        top_scores, pairs = scores.topk(min(PRE_NMS_TOP_K, scores.shape[1]), dim=1)  # best first
        anchor_index, classes = pairs // num_classes, pairs % num_classes
        deltas = box_deltas.float().gather(1, anchor_index.unsqueeze(-1).expand(-1, -1, 4))
        boxes = clip_boxes_to_image(decode(deltas, self.anchors[anchor_index]), setup.image_size)
        keep = torch.ops.mtdsl.nms_keep(boxes, top_scores, classes, setup.nms_iou, setup.score_threshold,
                                        num_classes)
        return _first_kept(keep, boxes, top_scores, classes, setup.max_detections)


def _first_kept(keep: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor,
                most: int) -> tuple[torch.Tensor, ...]:
    """The first ``most`` kept candidates of each image, in order, in fixed-size padded tensors, and their count."""
    batch = keep.shape[0]
    rank = keep.long().cumsum(dim=1) - 1
    chosen = keep & (rank < most)
    slot = torch.where(chosen, rank, torch.full_like(rank, most))  # the rest share one slot, dropped below;
    # slots from count on are never written, so they keep the padding they start with
    out_boxes = boxes.new_zeros(batch, most + 1, 4).scatter(1, slot.unsqueeze(-1).expand(-1, -1, 4), boxes)
    out_scores = scores.new_zeros(batch, most + 1).scatter(1, slot, scores)
    out_classes = classes.new_full((batch, most + 1), -1).scatter(1, slot, classes)
    return out_boxes[:, :most], out_scores[:, :most], out_classes[:, :most], chosen.long().sum(dim=1)
