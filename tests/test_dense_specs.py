"""The shipped detection specs: kitti_coco (shared EfficientDet) and pets_coco (recursive detector).

They compile as written; the D-index knob scales the whole detector; a second
BiFPN gives segmentation its own neck; and, with ../shared/data, one training
step of each runs on the real data (tiny backbone and input, so it is fast).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from mtdsl.codegen.train_source import detection_setups
from mtdsl.compiler import compile_spec
from mtdsl.nn.losses import build_loss
from mtdsl.spec.load import load_spec, load_text
from mtdsl.spec.streams import plan_streams
from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.data.tasks import task_labels
from mtdsl.train.loop.runtime import to_float

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
DATA = ROOT.parent / "shared" / "data"


def test_kitti_coco_is_efficientdet_d0_by_default_and_d_scales_it():
    d0 = compile_spec(load_spec(SPECS / "kitti_coco.mtl")).graph
    d1 = compile_spec(load_spec(SPECS / "kitti_coco.mtl", {"d": "1"})).graph
    assert d0.graph["input"] == [3, 512, 512] and d1.graph["input"] == [3, 640, 640]
    assert d0.nodes["pyramid"]["channels"] == 64 and d1.nodes["pyramid"]["channels"] == 88
    assert d0.nodes["pyramid"]["config"]["repeats"] == 3 and d1.nodes["pyramid"]["config"]["repeats"] == 4
    assert d0.nodes["objects.head"]["head"]["depth"] == 3
    assert d0.graph["backbones"]["trunk"]["model"] == "tf_efficientnet_lite0"
    assert d1.graph["backbones"]["trunk"]["model"] == "tf_efficientnet_lite1"
    assert sorted(d0.predecessors("pyramid")) == ["trunk.stage2", "trunk.stage3", "trunk.stage4"]
    assert set(d0.successors("pyramid")) == {"objects.head", "road.head"}


def test_segmentation_can_have_its_own_bifpn_and_share_only_the_backbone():
    text = (SPECS / "kitti_coco.mtl").read_text()
    text = text.replace("neck pyramid = bifpn(trunk, scale = ${d})",
                        "neck pyramid = bifpn(trunk, scale = ${d})\nneck road_pyramid = bifpn(trunk, scale = ${d})")
    text = text.replace("tap     = pyramid\n    head    = segmentation",
                        "tap     = road_pyramid\n    head    = segmentation")
    graph = compile_spec(load_text(text, str(SPECS / "kitti_coco.mtl"))).graph
    assert list(graph.successors("pyramid")) == ["objects.head"]
    assert list(graph.successors("road_pyramid")) == ["road.head"]
    assert not graph.nodes["pyramid"]["shared"] and graph.nodes["trunk.stage4"]["shared"]


def test_pets_coco_detects_one_class_and_crops_into_the_breed_head():
    spec = load_spec(SPECS / "pets_coco.mtl")
    assert spec.model.tasks["pet"].classes == ["pet"]
    assert spec.model.tasks["pet"].crops == ["breed"]
    graph = compile_spec(spec).graph
    assert graph.nodes["trunk.stage4"]["tasks"] == ["breed", "pet"]


def _one_step(spec_path: Path, overrides: dict[str, str]) -> dict[str, float]:
    """One optimiser step of every stream, with test_efficientnet at 64 pixels."""
    spec = load_spec(spec_path, overrides).with_backbone_models({"trunk": "test_efficientnet"}, pretrained="none")
    compilation = compile_spec(spec)
    model = compilation.model()
    labels = {label.task: label for label in task_labels(spec)}
    streams = [dataclasses.replace(stream, batch_size=4) for stream in plan_streams(spec)]
    data = StreamLoaders(streams, spec.datasets, labels, image_size=(64, 64), mean=(0.5,) * 3, std=(0.5,) * 3,
                         seed=0, workers=0, on_corrupt="error", device=torch.device("cpu"))
    setups = detection_setups(spec, compilation.graph)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = {}
    for index, stream in enumerate(streams):
        batch = data.next_batch(index)
        outputs = model(batch["image"], tasks=stream.tasks)
        for task in stream.tasks:
            kind = spec.model.tasks[task].kind
            loss = build_loss(spec.train.tasks[task].loss, task_kind=kind, detection=setups.get(task))
            losses[task] = loss(to_float(outputs[task]), batch["targets"][task])
        optimizer.zero_grad()
        sum(losses[t] for t in stream.tasks).backward()
        optimizer.step()
    return {task: value.item() for task, value in losses.items()}


needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} is absent (the shared real datasets)")


@pytest.mark.data
@needs_data
@pytest.mark.parametrize("name, input_line, tasks", [
    ("kitti_coco", "input efficientdet(${d})", {"objects", "road"}),    # coco128 boxes + CamVid masks
    ("pets_coco", "input 3x256x256", {"pet", "breed"}),                # oxford-pets heads + breeds
    ("pets_people", "input 3x256x256", {"objects"}),                   # oxford-pets heads joined with coco128
])
def test_each_detection_spec_takes_a_step_on_its_real_data(tmp_path, name, input_line, tasks):
    text = (SPECS / f"{name}.mtl").read_text()
    assert input_line in text
    spec_file = tmp_path / f"{name}.mtl"
    spec_file.write_text(text.replace(input_line, "input 3x64x64"))
    losses = _one_step(spec_file, {"data": str(DATA)})
    assert set(losses) == tasks
    assert all(torch.isfinite(torch.tensor(v)) and v > 0 for v in losses.values())
