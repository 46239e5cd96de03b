"""What ``mtdsl predict`` reports: per image its results and drawn files, and every path written."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtdsl.kinds.registry import KindTable
from mtdsl.render.label_results import label_text

__all__ = ["SUMMARIES", "ImagePrediction", "PredictionReport", "label_summary", "summary_lines"]

#: How each kind sums up one image's result in a few words, registered from its folder
#: (``mtdsl/kinds/<kind>/predict.py``): ``summary(task, output) -> str``.
SUMMARIES: KindTable[Callable[[str, dict[str, Any]], str]] = KindTable("prediction summary",
                                                                      loads="mtdsl.predict.kinds")


def label_summary(task: str, output: dict[str, Any]) -> str:
    """An image-label task's result: ``"shape circle 0.54"``."""
    return f"{task} {label_text(task, output)}"


@dataclass
class ImagePrediction:
    """What the model said about one image.

    Attributes:
        file: the image that was read.
        image_id: its ``image_id`` in ``detections.json``: its id in the COCO file the spec's
            detect tasks were trained from when that file lists every image
            (:mod:`mtdsl.predict.coco_ids`), else its 1-based position among the images.
        size: ``(width, height)`` in original pixels.
        outputs: per task, the JSON-ready result (the ``"tasks"`` of its ``predictions.json`` entry):
            classify ``{"kind", "class", "score", "top": [{"class", "score"}, ...]}``; binary
            ``{"kind", "positive", "score"}`` (score = P(positive)); multilabel ``{"kind",
            "labels", "scores": {name: p}}``; detect ``{"kind", "boxes": [{"box": [x0, y0, x1,
            y1], "class", "score", "crops"?: {task: result}}]}`` in original pixels; segment
            ``{"kind", "mask", "fractions": {class: share of the pixels}}``.
        drawn: the PNG with the predictions drawn on the image.
        masks: per segment task, the class-index PNG at the image's size.
    """

    file: Path
    image_id: Hashable
    size: tuple[int, int]
    outputs: dict[str, dict[str, Any]]
    drawn: Path | None = None
    masks: dict[str, Path] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "image_id": self.image_id,
            "width": self.size[0],
            "height": self.size[1],
            "drawn": self.drawn.name if self.drawn else None,
            "tasks": self.outputs,
        }


@dataclass
class PredictionReport:
    """Everything :func:`predict` wrote.

    Attributes:
        out_dir: the output folder.
        tasks: the tasks that were run, in spec order.
        images: one entry per image, in input order.
        predictions_json: ``predictions.json``.
        detections_json: ``detections.json`` (COCO results), ``None`` when no detect task ran.
        written: every file written, JSON files first.
    """

    out_dir: Path
    tasks: list[str]
    images: list[ImagePrediction]
    predictions_json: Path
    detections_json: Path | None
    written: list[Path]


def summary_lines(report: PredictionReport) -> list[str]:
    """One line per image: its label results, box counts and largest non-background mask classes."""
    lines = []
    for image in report.images:
        parts = [SUMMARIES[output["kind"]](task, output) for task, output in image.outputs.items()]
        lines.append(f"{image.file.name}: " + " · ".join(parts))
    return lines
