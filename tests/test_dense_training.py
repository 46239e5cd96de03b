"""Detection and segmentation through the training loop and its evaluation, on CPU.

* a 2-epoch run of classification + detection + segmentation on synthetic shapes
  writes every metric, the results and the prediction images;
* perfect box predictions give AP 1.0 through the evaluation path
  (:func:`mtdsl.train.loop.evaluation.evaluate`), shifted ones lower it;
* the detection criterion gives a class no dataset annotates on an image exactly
  zero gradient (thesis §5.3).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from mtdsl.cli import main
from mtdsl.detection.anchors import AnchorConfig, AnchorLabeler, batch_targets
from mtdsl.detection.bench import DetectionCriterion, DetectionSetup
from mtdsl.detection.loss import DetectionLoss
from mtdsl.spec.data import SyntheticDataset
from mtdsl.spec.streams import Stream
from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.loop.evaluation import evaluate
from mtdsl.train.loop.precision import resolve_precision
from mtdsl.train.run.report import MetricsLog

SHAPES = ("circle", "square", "triangle")

DENSE = """
model dense
input 3x64x64
backbone trunk = timm("test_efficientnet")
neck pyramid = bifpn(trunk, channels = 16, repeats = 1, max_level = 5)
dataset shapes = synthetic(count = 96, size = 64, seed = 0)
task shape: classify(shapes) { classes = [circle, square, triangle] }
task objects: detect(shapes) {
    classes = [circle, square, triangle]
    head = efficientdet(depth = 1, anchor_scale = 2)
}
task regions: segment(shapes) { classes = [background, circle, square, triangle]; loss = cross_entropy(dice = 0.5) }
train { batch_size = 16; epochs = 2; optimizer = adamw(lr = 0.003); workers = 0 }
"""


def test_a_two_epoch_run_of_classify_detect_and_segment_writes_every_metric(tmp_path):
    spec = tmp_path / "dense.mtl"
    spec.write_text(DENSE, encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "--quiet"]) == 0

    log = MetricsLog.read(run / "metrics.jsonl")
    trains = [r for r in log if r["event"] == "train"]
    assert len(trains) == 2
    assert all(set(r["losses"]) == {"shape", "objects", "regions"} for r in trains)
    assert trains[1]["losses"]["objects"] < trains[0]["losses"]["objects"]
    expected = {
        "shape": {"accuracy", "balanced_accuracy"},
        "objects": {"AP", "AP50", "AP75", "AR100", "top_box_accuracy", "AP/circle", "AP/square", "AP/triangle"},
        "regions": {"miou", "pixel_accuracy", "iou/background", "iou/circle", "iou/square", "iou/triangle"},
    }
    for record in [r for r in log if r["event"] in ("val", "test")]:
        for task, names in expected.items():
            assert names <= set(record["metrics"][task]), (task, record["metrics"][task])
        assert record["main"].keys() == expected.keys()
    test = next(r for r in log if r["event"] == "test")
    assert test["main"]["objects"] == test["metrics"]["objects"]["AP"]
    assert test["main"]["regions"] == test["metrics"]["regions"]["miou"]
    assert 0.0 <= test["metrics"]["regions"]["pixel_accuracy"] <= 1.0
    assert (run / "predictions" / "shapes.png").stat().st_size > 0
    assert (run / "test.json").exists() and "AP50" in (run / "test.md").read_text()


# ---------------------------------------------------------------- AP through evaluate()


class Replay(nn.Module):
    """A stand-in model that returns prepared detection outputs, batch by batch, in loader order."""

    def __init__(self, outputs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        super().__init__()
        self.outputs = list(outputs)

    def forward(self, images: torch.Tensor, tasks=None) -> dict:
        return {"objects": self.outputs.pop(0)}


def _loaders() -> StreamLoaders:
    labels = {"objects": TaskLabels("objects", "detect", SHAPES)}
    return StreamLoaders(
        [Stream(("shapes",), tasks=("objects",), batch_size=8)],
        {"shapes": SyntheticDataset(name="shapes", count=40, size=64, seed=3)},
        labels, image_size=(64, 64), mean=(0.5,) * 3, std=(0.5,) * 3, seed=0, workers=0, on_corrupt="error",
        device=torch.device("cpu"),
    )


def _prepared_outputs(loaders: StreamLoaders, setup: DetectionSetup, shift: float) -> list:
    """Per validation batch: logits +10 on each positive anchor's class (-10 elsewhere) and its exact box
    offsets, with the boxes moved right by ``shift`` box widths."""
    anchors = setup.anchor_boxes()
    outputs = []
    for _, loader in loaders.evaluation("val"):
        for batch in loader:
            targets = batch["targets"]["objects"]
            cls_targets, box_targets, _ = batch_targets(anchors, targets["boxes"], targets["classes"], setup.labeler)
            logits = torch.full((*cls_targets.shape, len(SHAPES)), -10.0)
            positive = cls_targets >= 0
            logits[positive, cls_targets[positive]] = 10.0
            box_targets[..., 0] += shift  # dx is in anchor widths; boxes match anchors closely
            outputs.append((logits, box_targets))
    return outputs


@pytest.fixture(scope="module")
def detection_setup() -> DetectionSetup:
    anchors = AnchorConfig(min_level=3, max_level=5, anchor_scale=2.0)
    return DetectionSetup(anchors, AnchorLabeler(num_classes=3), (64, 64))


def _ap(shift: float, setup: DetectionSetup) -> dict[str, float]:
    loaders = _loaders()
    model = Replay(_prepared_outputs(loaders, setup, shift))
    results, mains = evaluate(
        model, loaders, "val", {"objects": ("detect", 3, SHAPES)}, resolve_precision("fp32", torch.device("cpu")),
        decoders={"objects": setup},
    )
    assert mains == {"objects": "AP"}
    return results["objects"]


def test_perfect_boxes_give_ap_one_through_the_evaluation_path(detection_setup):
    results = _ap(0.0, detection_setup)
    assert results["AP"] == pytest.approx(1.0)
    assert results["AP50"] == pytest.approx(1.0) and results["top_box_accuracy"] == 1.0


def test_shifted_boxes_lower_the_ap(detection_setup):
    perfect, shifted, far = _ap(0.0, detection_setup), _ap(0.2, detection_setup), _ap(0.6, detection_setup)
    assert far["AP"] < shifted["AP"] < perfect["AP"]
    assert far["AP50"] < perfect["AP50"]


# ---------------------------------------------------------------- cross-dataset masking


def test_an_unannotated_class_gets_no_gradient_from_the_criterion(detection_setup):
    """Image 0 comes from a dataset that boxes only circles; an unlabelled square there must not be taught
    as background. Image 1's dataset annotates every class, so its squares are."""
    criterion = DetectionCriterion(DetectionLoss(), detection_setup)
    anchors = detection_setup.anchor_boxes()
    logits = torch.zeros(2, len(anchors), 3, requires_grad=True)
    deltas = torch.zeros(2, len(anchors), 4, requires_grad=True)
    targets = {
        "boxes": [torch.tensor([[8.0, 8.0, 30.0, 30.0]]), torch.tensor([[20.0, 20.0, 50.0, 50.0]])],
        "classes": [torch.tensor([0]), torch.tensor([1])],
        "annotated": torch.tensor([[True, False, False], [True, True, True]]),
    }
    criterion((logits, deltas), targets).backward()
    assert torch.count_nonzero(logits.grad[0, :, 1:]) == 0
    assert torch.count_nonzero(logits.grad[0, :, 0]) > 0
    assert torch.count_nonzero(logits.grad[1, :, 1]) > 0


def test_the_generated_loop_names_its_anchors_and_losses(tmp_path):
    spec = tmp_path / "dense.mtl"
    spec.write_text(DENSE, encoding="utf-8")
    assert main(["compile", str(spec), "--out", str(tmp_path / "build")]) == 0
    source = Path(tmp_path / "build" / "train.py").read_text()
    assert "DETECTION = {\n    'objects': DetectionSetup(anchors=AnchorConfig(min_level=3, max_level=5" in source
    assert "build_loss(DetectionLossConfig(" in source and "detection=DETECTION['objects'])" in source
    assert "task_kind='segment'" in source
