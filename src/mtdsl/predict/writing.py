"""What ``mtdsl predict`` writes per image: unique file stems, the drawn picture, COCO entries, JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mtdsl.kinds import TASK_KINDS
from mtdsl.kinds.registry import KindTable
from mtdsl.predict.predictor import Found, Predictor
from mtdsl.render.label_results import label_text

__all__ = ["DRAWN", "Picture", "coco_entries", "draw", "draw_title", "output_stems", "write_json"]


@dataclass
class Picture:
    """One drawn image in the making: every detect task's boxes, one mask, named points, the title's parts.

    Attributes:
        offset: where the next detect task's class indices start, so each task's classes get
            their own colours.
        mask_task: the task whose mask is drawn (the first that has one).
    """

    boxes: list[list[float]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    classes: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    offset: int = 0
    mask_task: str | None = None
    title: list[str] = field(default_factory=list)
    points: list[list[float]] = field(default_factory=list)
    point_labels: list[str] = field(default_factory=list)


#: What each kind adds to a drawn image, registered from its folder (``mtdsl/kinds/<kind>/predict.py``):
#: ``draw(picture, predictor, task, result)``.
DRAWN: KindTable[Callable[[Picture, Predictor, str, Found], None]] = KindTable("prediction drawing",
                                                                             loads="mtdsl.predict.kinds")


def draw_title(picture: Picture, predictor: Predictor, task: str, result: Found) -> None:
    """An image-label task's result in the title."""
    picture.title.append(f"{task}: {label_text(task, result.outputs[task])}")


def output_stems(files: Sequence[Path], mask_tasks: Sequence[str]) -> list[str]:
    """An output stem per image whose files (``stem.png``, ``stem.task.png``) no other image uses."""
    used: set[str] = set()
    stems = []
    for file in files:
        base, n = file.stem, 1
        while True:
            stem = base if n == 1 else f"{base}-{n}"
            names = {f"{stem}.png", *(f"{stem}.{task}.png" for task in mask_tasks)}
            if not names & used:
                break
            n += 1
        used |= names
        stems.append(stem)
    return stems


def draw(predictor: Predictor, image: Image.Image, result: Found) -> Image.Image:
    """The image with every detect task's boxes, the first segment task's mask and a title of label results."""
    from mtdsl.render.predictions import draw_predictions

    picture = Picture()
    for task in predictor.tasks:
        DRAWN[predictor.kinds[task]](picture, predictor, task, result)
    boxes, segment, title = picture.boxes, picture.mask_task, "  ".join(picture.title)
    return draw_predictions(
        image,
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4) if boxes else None,
        scores=picture.scores if boxes else None,
        classes=picture.classes if boxes else None,
        labels=picture.labels if boxes else None,
        mask=result.masks[segment] if segment else None,
        mask_names=predictor.classes[segment] if segment else None,
        title=title or None,
        points=np.asarray(picture.points, dtype=np.float32).reshape(-1, 2) if picture.points else None,
        point_labels=picture.point_labels if picture.points else None,
    )


def coco_entries(
    predictor: Predictor, image_id: Hashable, result: Found, category_ids: Mapping[str, Sequence[int] | None]
) -> list[dict[str, Any]]:
    """``detections.json``'s entries for one image: every detect task's boxes, ``category_ids`` per task
    (``None``: the classes' 1-based positions)."""
    from mtdsl.render.predictions import coco_results

    entries: list[dict[str, Any]] = []
    for task in predictor.tasks:
        if TASK_KINDS[predictor.kinds[task]].targets != "boxes":
            continue
        boxes = result.outputs[task]["boxes"]
        detection = {
            "boxes": np.asarray([b["box"] for b in boxes], dtype=np.float64).reshape(-1, 4),
            "scores": np.asarray([b["score"] for b in boxes], dtype=np.float64),
            "classes": np.asarray([b["class_index"] for b in boxes], dtype=np.int64),
        }
        found = coco_results([detection], [image_id], predictor.classes[task] or [],
                             category_ids=category_ids.get(task))
        for entry, box in zip(found, boxes):
            entry["task"] = task
            if "crops" in box:
                entry["crops"] = box["crops"]
            entries.append(entry)
    return entries


def write_json(path: Path, value: Any) -> Path:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path
