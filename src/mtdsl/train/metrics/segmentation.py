"""Segmentation metrics: mIoU and pixel accuracy from a streamed confusion matrix.

Like the classification metrics in :mod:`mtdsl.train.metrics.labels`, it keeps counts, not outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mtdsl.train.data.box_mask_targets import IGNORE_INDEX
from mtdsl.train.metrics.metric import NAN, TaskMetric, _mean, _ratio

__all__ = ["SegmentationMetric"]


class SegmentationMetric(TaskMetric):
    """Per-pixel classification from ``(N, C, h, w)`` logits and ``(N, H, W)`` int64 class targets.

    Pixels whose target is ``ignore_index`` (void, letterbox padding) are not
    counted. Logits at a lower resolution than the targets (a head at stride
    4, say) are bilinearly upsampled first. Reports ``miou`` (main; the mean
    IoU over the classes that occur in the targets or the predictions),
    ``pixel_accuracy`` and ``iou/<class>`` (``nan`` for a class absent from both).

    Args:
        num_outputs: the number of classes ``C``.
        class_names: names for the ``iou/<class>`` keys (default ``0`` … ``C-1``).
        ignore_index: the target value to skip.

    >>> metric = SegmentationMetric(2, ["ground", "road"])
    >>> logits = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]]]])  # predicts [[0, 0], [1, 1]]
    >>> metric.update(logits, torch.tensor([[[0, 1], [1, 255]]]))
    >>> metric.compute()
    {'miou': 0.5, 'pixel_accuracy': 0.6666666666666666, 'iou/ground': 0.5, 'iou/road': 0.5}
    """

    main = "miou"
    accumulated = ("confusion",)

    def __init__(
        self, num_outputs: int, class_names: Sequence[str] | None = None, ignore_index: int = IGNORE_INDEX
    ) -> None:
        self.class_names = tuple(class_names) if class_names is not None else tuple(map(str, range(num_outputs)))
        if len(self.class_names) != num_outputs:
            raise ValueError(f"{num_outputs} classes but {len(self.class_names)} class names")
        self.ignore_index = ignore_index
        super().__init__(num_outputs, self.class_names)

    def reset(self) -> None:
        # confusion[target, prediction]
        self.confusion = torch.zeros(self.num_outputs, self.num_outputs, dtype=torch.int64)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor | dict[str, torch.Tensor]) -> None:
        """Add a batch: ``outputs`` ``(N, C, h, w)`` logits, or ``(N, H, W)`` predicted class indices.

        ``targets`` may be ``{"mask": (N, H, W), "annotated": (N, C) bool}`` (a task that
        joins datasets): each image's pixels are then predicted among the classes
        its dataset labels, so a class it does not label is neither right nor wrong there.
        """
        classes = self.num_outputs
        annotated = targets["annotated"].detach() if isinstance(targets, dict) else None
        mask = targets["mask"] if isinstance(targets, dict) else targets
        outputs, targets = outputs.detach(), mask.detach().long()
        if outputs.dim() == targets.dim() + 1:
            if outputs.shape[-2:] != targets.shape[-2:]:
                outputs = F.interpolate(outputs.float(), size=targets.shape[-2:], mode="bilinear", align_corners=False)
            if annotated is not None:
                outputs = outputs.float().masked_fill(~annotated[:, :, None, None], float("-inf"))
            predictions = outputs.argmax(dim=1)
        else:
            predictions = outputs.long()
        if predictions.shape != targets.shape:
            raise ValueError(f"predictions of shape {tuple(predictions.shape)} for targets {tuple(targets.shape)}")
        valid = targets != self.ignore_index
        targets, predictions = targets[valid], predictions[valid]
        if targets.numel() == 0:
            return
        low, high = int(targets.min()), int(targets.max())
        if low < 0 or high >= classes:
            raise ValueError(
                f"class targets must lie in [0, {classes}) or be {self.ignore_index}, got values in [{low}, {high}]"
            )
        counts = torch.bincount(targets * classes + predictions, minlength=classes * classes)
        self.confusion += counts.reshape(classes, classes).cpu()

    def compute(self) -> dict[str, float]:
        confusion = self.confusion.double()
        hits = confusion.diagonal()
        union = confusion.sum(dim=0) + confusion.sum(dim=1) - hits
        present = union > 0
        iou = torch.where(present, hits / union.clamp(min=1), torch.full_like(hits, NAN))
        results = {"miou": _mean(iou[present]), "pixel_accuracy": _ratio(hits.sum(), confusion.sum())}
        results.update({f"iou/{name}": float(value) for name, value in zip(self.class_names, iou.tolist())})
        return results
