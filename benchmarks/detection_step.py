"""Where a detection training step's time goes: the network against anchor labelling and the loss.

kitti_coco's detect task at EfficientDet-D0 (tf_efficientnet_lite0, BiFPN 64x3,
512x512) gets random weights and random boxes (``--boxes`` per image, COCO-like
sizes). Each step is timed in three parts, one after the other on the same batch:

* ``network``: forward of the detect task and backward of a stand-in loss (the
  sum of the outputs), so no target work is in it;
* ``anchor matching``: IoU matching of every anchor for each image (a Python
  loop over the batch), as :class:`~mtdsl.detection.bench.DetectionCriterion` does;
* ``loss``: focal and Huber loss with the cross-dataset mask on the same
  outputs, detached, forward and backward.

It prints the median of each part and its share of the step, the numbers that
say whether the per-image loop matters.

    .venv/bin/python benchmarks/detection_step.py [--device cuda] [--batch 8] [--steps 8] [--boxes 7] [--d 0]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from mtdsl.codegen.train_source import detection_setups
from mtdsl.compiler import compile_spec
from mtdsl.detection.anchors import batch_targets
from mtdsl.detection.loss import DetectionLoss
from mtdsl.spec.load import load_spec

SPEC = Path(__file__).resolve().parents[1] / "specs" / "kitti_coco.mtl"
TASK = "objects"


def random_targets(batch: int, boxes: int, size: int, classes: int, generator: torch.Generator) -> dict:
    """``boxes`` boxes per image, sides between 4% and 60% of the image, anywhere inside it."""
    sides = torch.empty(batch, boxes, 2).uniform_(0.04, 0.6, generator=generator) * size
    corners = torch.rand(batch, boxes, 2, generator=generator) * (size - sides)
    return {
        "boxes": list(torch.cat([corners, corners + sides], dim=-1)),
        "classes": list(torch.randint(0, classes, (batch, boxes), generator=generator)),
        "annotated": torch.ones(batch, classes, dtype=torch.bool),
    }


def synchronised(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--boxes", type=int, default=7, help="boxes per image (COCO averages about 7)")
    parser.add_argument("--d", default="0", help="EfficientDet scale index")
    args = parser.parse_args()
    device = torch.device(args.device)

    spec = load_spec(SPEC, {"d": args.d})
    spec = spec.with_backbone_models({"trunk": spec.model.backbones["trunk"].model}, pretrained="none")
    compilation = compile_spec(spec)
    size = spec.model.input.height
    setup = detection_setups(spec, compilation.graph)[TASK]
    loss = DetectionLoss()
    classes = spec.model.tasks[TASK].num_outputs
    model = compilation.model().to(device).train()
    generator = torch.Generator().manual_seed(0)

    times: dict[str, list[float]] = {"network (forward + backward)": [], "anchor matching": [],
                                     "loss (forward + backward)": []}
    for _ in range(args.steps + 2):
        images = torch.randn(args.batch, 3, size, size, generator=generator).to(device)
        targets = random_targets(args.batch, args.boxes, size, classes, generator)
        targets = {key: [v.to(device) for v in value] if isinstance(value, list) else value.to(device)
                   for key, value in targets.items()}
        started = synchronised(device)
        outputs = model(images, tasks=[TASK])[TASK]
        sum(part.float().sum() for part in outputs).backward()
        model.zero_grad(set_to_none=True)
        network_done = synchronised(device)
        anchors = setup.anchor_boxes(device)
        matched = batch_targets(anchors, targets["boxes"], targets["classes"], setup.labeler)
        matching_done = synchronised(device)
        logits, deltas = (part.detach().float().requires_grad_() for part in outputs)
        loss(logits, deltas, *matched, class_mask=targets["annotated"])["loss"].backward()
        loss_done = synchronised(device)
        times["network (forward + backward)"].append(network_done - started)
        times["anchor matching"].append(matching_done - network_done)
        times["loss (forward + backward)"].append(loss_done - matching_done)

    medians = {part: statistics.median(values[2:]) * 1e3 for part, values in times.items()}
    step = sum(medians.values())
    print(f"device {device}, D{args.d} {size}x{size}, batch {args.batch}, {args.boxes} boxes/image, "
          f"{len(setup.anchor_boxes())} anchors, {args.steps} timed steps")
    for part, milliseconds in medians.items():
        print(f"{part:<29} {milliseconds:9.1f} ms/step  ({milliseconds / step:5.1%} of the step)")


if __name__ == "__main__":
    main()
