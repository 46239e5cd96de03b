"""What ``mtdsl predict`` writes per image: unique file stems, the drawn picture, COCO entries, JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mtdsl.kinds import TASK_KINDS
from mtdsl.predict.predictor import Found, Predictor
from mtdsl.render.label_results import label_text

__all__ = ["coco_entries", "draw", "output_stems", "write_json"]


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

    boxes, scores, classes, labels = [], [], [], []
    offset = 0  # class indices run on across detect tasks, so each task's classes get their own colours
    for task in predictor.tasks:
        if TASK_KINDS[predictor.kinds[task]].targets != "boxes":
            continue
        for entry in result.outputs[task]["boxes"]:
            boxes.append(entry["box"])
            scores.append(entry["score"])
            classes.append(offset + entry["class_index"])
            crops = " · ".join(label_text(t, out) for t, out in entry.get("crops", {}).items())
            labels.append(f"{entry['class']} {entry['score']:.2f}" + (f" · {crops}" if crops else ""))
        offset += len(predictor.classes[task] or [])
    segment = next((t for t in predictor.tasks if t in result.masks), None)
    title = "  ".join(
        f"{task}: {label_text(task, result.outputs[task])}" for task in predictor.tasks
        if TASK_KINDS[predictor.kinds[task]].image_labels
    )
    return draw_predictions(
        image,
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4) if boxes else None,
        scores=scores if boxes else None,
        classes=classes if boxes else None,
        labels=labels if boxes else None,
        mask=result.masks[segment] if segment else None,
        mask_names=predictor.classes[segment] if segment else None,
        title=title or None,
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
