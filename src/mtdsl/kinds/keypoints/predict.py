"""What ``mtdsl predict`` makes of a ``keypoints`` task's heatmaps, and says of them.

Each point comes back in the original image's pixels, mapped back through the letterbox as
evaluation maps it, with its peak's probability; the drawn image shows each point as a dot in
its own colour, labelled with its name.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from mtdsl.kinds.keypoints.kind import KEYPOINTS
from mtdsl.nn.heads.heatmap import decode_heatmaps
from mtdsl.predict.predictor import DECODERS, Found, Predictor
from mtdsl.predict.results import SUMMARIES
from mtdsl.predict.writing import DRAWN, Picture
from mtdsl.render.label_results import rounded
from mtdsl.train.data.point_targets import unletterbox_points
from mtdsl.train.run.showcase import DRAWN_SCORE


@DECODERS.register(KEYPOINTS.name)
def decode(predictor: Predictor, task: str, heatmaps: torch.Tensor, images: list[Image.Image],
           scales: list[tuple[float, float]] | None, found: list[Found]) -> None:
    """Each image's points in its own pixels, named, with their scores and the instance's (their mean)."""
    assert scales is not None  # a keypoints task sees the letterbox
    side = predictor.letterbox.size
    points, scores = decode_heatmaps(heatmaps.float(), (side, side))
    names = predictor.classes[task] or []
    for spots, confidence, scale, result in zip(points.cpu().numpy(), scores.cpu().numpy(), scales, found):
        moved = unletterbox_points(spots, scale)
        result.outputs[task] = {
            "kind": KEYPOINTS.name,
            "score": rounded(confidence.mean()),
            "points": [{"name": name, "x": rounded(x, 2), "y": rounded(y, 2), "score": rounded(s)}
                       for name, (x, y), s in zip(names, moved.tolist(), confidence.tolist())],
        }


@SUMMARIES.register(KEYPOINTS.name)
def summary(task: str, output: dict[str, Any]) -> str:
    """How many points are sure (score over 0.3, as drawn), and the instance's score."""
    sure = sum(point["score"] >= DRAWN_SCORE for point in output["points"])
    return f"{task} {sure}/{len(output['points'])} points, score {output['score']:.2f}"


@DRAWN.register(KEYPOINTS.name)
def draw(picture: Picture, predictor: Predictor, task: str, result: Found) -> None:
    """Every sure point (score over 0.3) as a dot labelled with its name."""
    for point in result.outputs[task]["points"]:
        if point["score"] >= DRAWN_SCORE:
            picture.points.append([point["x"], point["y"]])
            picture.point_labels.append(point["name"])
