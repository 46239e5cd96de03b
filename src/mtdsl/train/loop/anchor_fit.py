"""Before training: do the detect tasks' anchors fit their training boxes at the input size?

``mtdsl train`` prints one line per detect task (and ``mtdsl check --data`` the
same), e.g.::

    pet: anchors match 97% of 207 training boxes at IoU 0.5 (median best IoU 0.74; 5% of boxes under 31 px)

and, when fewer than :data:`~mtdsl.detection.coverage.LOW_COVERAGE` of the boxes
are matched, a warning that names the fix: the ``anchor_scale`` that matches
most, or a larger input when the boxes are smaller than any anchor can be.

Boxes are measured where the network sees them: each image's boxes are scaled
by the letterbox of its own size (read from the file's header, no decoding).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mtdsl.detection.bench import DetectionSetup
from mtdsl.detection.coverage import LOW_COVERAGE, Coverage, anchor_coverage, best_anchor_scale
from mtdsl.errors import DataError
from mtdsl.train.data.datasets import Examples
from mtdsl.train.data.decode import oriented_size
from mtdsl.train.data.letterbox import Letterbox
from mtdsl.train.data.loaders import StreamLoaders

#: Images whose boxes are measured per split, at most (evenly spaced); the rest are not opened.
MAX_IMAGES = 2000
#: How many more boxes (as a share) another ``anchor_scale`` must match to be suggested.
WORTH_CHANGING = 0.05


def image_size(reference: str | int, examples: Examples) -> tuple[int, int]:
    """``(width, height)`` of one example's upright image, from its header (synthetic images: their configured size)."""
    if isinstance(reference, int):
        assert examples.synthetic is not None
        return examples.synthetic.size, examples.synthetic.size
    try:
        return oriented_size(reference)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read the image {reference}: {error}", hint="replace or remove the file") from None


def input_boxes(examples: Examples, task: str, side: int, limit: int = MAX_IMAGES,
                squash: bool = False) -> list[np.ndarray]:
    """Boxes of ``task`` in network-input pixels, as the letterbox places them (no flip; stretched when ``squash``).

    At most ``limit`` images with boxes are measured, evenly spaced over the split: each costs a
    header read, and a training start should not read 100,000 headers to say a percentage.
    """
    letterbox = Letterbox(side, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), train=False, squash=squash)
    boxed = [index for index, target in enumerate(examples.targets[task]) if len(target.boxes)]
    if len(boxed) > limit:
        boxed = [boxed[round(i * len(boxed) / limit)] for i in range(limit)]
    placed = []
    for index in boxed:
        reference, target = examples.images[index], examples.targets[task][index]
        width, height = image_size(reference, examples)
        new_w, new_h = letterbox.fitted(width, height)
        scale = np.array([new_w / width, new_h / height] * 2, dtype=np.float32)
        placed.append(target.boxes * scale)
    return placed


def training_boxes(data: StreamLoaders, task: str) -> list[np.ndarray]:
    """The training split's boxes of ``task`` over every stream that trains it, in input pixels."""
    found: list[np.ndarray] = []
    for index, stream in enumerate(data.streams):
        train = data.splits[index].get("train")
        if task in stream.tasks and train is not None:
            letterbox = train.transform
            assert isinstance(letterbox, Letterbox)  # a detect task's stream is letterboxed or squashed
            found += input_boxes(train.examples, task, letterbox.size, squash=letterbox.squash)
    return found


def coverage_lines(setups: Mapping[str, DetectionSetup], data: StreamLoaders) -> list[str]:
    """One line per detect task, then a rich-markup warning for each whose anchors match too few boxes."""
    lines, warnings = [], []
    for task, setup in setups.items():
        boxes = training_boxes(data, task)
        match_iou = setup.labeler.match_threshold
        found = anchor_coverage(setup.anchors, match_iou, setup.image_size, boxes)
        if not found.boxes:
            continue
        lines.append(f"{task}: {describe(found, match_iou)}")
        if found.share < LOW_COVERAGE:
            warnings.append(f"[yellow]warning:[/] {task}: {advice(setup, boxes, found)}")
    return lines + warnings


def describe(found: Coverage, match_iou: float) -> str:
    return (
        f"anchors match {found.share:.0%} of {found.boxes} training boxes at IoU {match_iou:g} "
        f"(median best IoU {found.median_iou:.2f}; 5% of boxes under {found.smallest:.0f} px)"
    )


def advice(setup: DetectionSetup, boxes: list[np.ndarray], found: Coverage) -> str:
    """What to change when the anchors match too few boxes."""
    anchors = setup.anchors
    match_iou = setup.labeler.match_threshold
    said = f"only {found.share:.0%} of the training boxes overlap an anchor at IoU {match_iou:g}; "
    scale, better = best_anchor_scale(anchors, match_iou, setup.image_size, boxes)
    if scale != anchors.anchor_scale and better.share - found.share >= WORTH_CHANGING:
        return said + (
            f"head = efficientdet(anchor_scale = {scale:g}) would match {better.share:.0%} "
            f"(now {anchors.anchor_scale:g}: the smallest anchor is {anchors.anchor_scale * 2**anchors.min_level:g} px)"
        )
    return said + (
        f"no anchor_scale matches more than {better.share:.0%} (5% of the boxes are under {found.smallest:.0f} px "
        f"at this input size, the finest level's stride is {2**anchors.min_level} px); raise the input size"
    )
