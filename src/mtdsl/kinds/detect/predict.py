"""What ``mtdsl predict`` makes of a ``detect`` task's outputs, and says of them.

Boxes come back in original-image pixels, mapped as the evaluation maps them; a task with
``crops`` labels each box by running its crop through the same model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image

from mtdsl.kinds.detect.kind import DETECT
from mtdsl.predict.predictor import DECODERS, Found, Predictor
from mtdsl.predict.results import SUMMARIES
from mtdsl.predict.writing import DRAWN, Picture
from mtdsl.render.label_results import label_output, label_text, rounded
from mtdsl.train.data.box_mask_targets import unletterbox_boxes


@DECODERS.register(DETECT.name)
def decode(predictor: Predictor, task: str, outputs: Any, images: list[Image.Image],
           scales: list[tuple[float, float]] | None, found: list[Found]) -> None:
    """Each image's boxes in its own pixels, best first, and what each box's crop is (``crops``)."""
    assert scales is not None  # a detect task sees the letterbox
    names = predictor.classes[task] or []
    for image, (sx, sy), detection, result in zip(images, scales, predictor.setups[task].detections(outputs), found):
        # The evaluation maps boxes back the same way, so detections.json scores as mtdsl's metric does.
        boxes, keep = unletterbox_boxes(detection["boxes"].float().cpu().numpy(), (sx, sy), image.size)
        scores = detection["scores"].float().cpu().numpy()[keep]
        classes = detection["classes"].cpu().numpy().astype(np.int64)[keep]
        entries = [
            {"box": [rounded(v, 2) for v in box.tolist()], "class": names[int(c)], "class_index": int(c),
             "score": rounded(s)}
            for box, s, c in zip(boxes, scores, classes)
        ]
        if task in predictor.crops and entries:
            for entry, crop in zip(entries, _classify_crops(predictor, image, boxes, predictor.crops[task])):
                entry["crops"] = crop
        result.outputs[task] = {"kind": DETECT.name, "boxes": entries}


def _classify_crops(predictor: Predictor, image: Image.Image, boxes: np.ndarray,
                    tasks: list[str]) -> list[dict[str, Any]]:
    """Each box cut from the original image, resized to the input and labelled by ``tasks``."""
    from mtdsl.train.data.transforms import pixels_of

    width, height = image.size
    tensors = []
    for x0, y0, x1, y1 in boxes.tolist():
        left, top = min(math.floor(x0), width - 1), min(math.floor(y0), height - 1)
        right, bottom = max(left + 1, math.ceil(x1)), max(top + 1, math.ceil(y1))
        crop = image.crop((left, top, right, bottom)).resize(predictor.input_size, Image.Resampling.BILINEAR)
        tensors.append(predictor.resize.normalise(pixels_of(crop)))
    results: list[dict[str, Any]] = []
    for start in range(0, len(tensors), predictor.batch_size):
        outputs = predictor.forward(tensors[start:start + predictor.batch_size], tasks)
        for n in range(len(tensors[start:start + predictor.batch_size])):
            results.append({
                t: _crop_result(label_output(predictor.kinds[t], predictor.classes[t], outputs[t][n])) for t in tasks
            })
    return results


def _crop_result(output: dict[str, Any]) -> dict[str, Any]:
    """A crop task's result without the whole-image extras (kind, top classes)."""
    return {key: value for key, value in output.items() if key not in ("kind", "top")}


@SUMMARIES.register(DETECT.name)
def summary(task: str, output: dict[str, Any]) -> str:
    count = len(output["boxes"])
    return f"{task} {count} box{'es' if count != 1 else ''}"


@DRAWN.register(DETECT.name)
def draw(picture: Picture, predictor: Predictor, task: str, result: Found) -> None:
    """Every box, labelled with its class, score and crops; class indices run on across detect tasks."""
    for entry in result.outputs[task]["boxes"]:
        picture.boxes.append(entry["box"])
        picture.scores.append(entry["score"])
        picture.classes.append(picture.offset + entry["class_index"])
        crops = " · ".join(label_text(t, out) for t, out in entry.get("crops", {}).items())
        picture.labels.append(f"{entry['class']} {entry['score']:.2f}" + (f" · {crops}" if crops else ""))
    picture.offset += len(predictor.classes[task] or [])
