"""One task, several datasets: ``detect(shapes + cars)`` (thesis §5.3, Yao et al. 2020).

The synthetic shapes box circles, squares and triangles; a small COCO file
boxes cars (and people, which the task does not learn). Joined, each image
still says which of the task's classes its own dataset annotates, so:

* a car image never teaches "no circle here", a shapes image never "no car";
* the criterion gives the unannotated classes of an image exactly zero gradient,
  on batches that come through the language, the loaders and the collate;
* a 2-epoch run writes AP for every class, from both datasets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, requires_shared_data, tiny_backbones
from PIL import Image, ImageDraw

from mtdsl.cli import main
from mtdsl.codegen.train_source import detection_setups
from mtdsl.compiler import compile_spec, compile_text
from mtdsl.detection.bench import DetectionCriterion
from mtdsl.detection.loss import DetectionLoss
from mtdsl.errors import DataError, MtdslError
from mtdsl.spec.data import FolderDataset
from mtdsl.spec.streams import plan_streams
from mtdsl.train.data.datasets import join_datasets, read_splits
from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.data.tasks import TaskLabels, task_labels
from mtdsl.train.run.report import MetricsLog

CLASSES = ["circle", "square", "triangle", "car"]


def _write_cars(root: Path, count: int = 16) -> Path:
    """``count`` 64x48 street scenes: a red car box in each, a person box (not a task class) in every other."""
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for index in range(count):
        x, y = 4 + (index * 5) % 30, 6 + (index * 3) % 16
        picture = Image.new("RGB", (64, 48), (90, 90, 90))
        draw = ImageDraw.Draw(picture)
        draw.rectangle([x, y, x + 24, y + 16], fill=(200, 30, 30))
        boxes = [(1, [x, y, 25, 17])]
        if index % 2:
            draw.rectangle([50, 4, 58, 30], fill=(30, 30, 200))
            boxes.append((2, [50, 4, 9, 27]))
        picture.save(root / "images" / f"{index}.png")
        images.append({"id": index + 1, "file_name": f"{index}.png", "width": 64, "height": 48})
        for category, bbox in boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": category,
                                "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0})
    categories = [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}]
    path = root / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def _joined_spec(cars: Path, *, classes: str = "[circle, square, triangle, car]", datasets: str = "shapes + cars",
                 extra: str = "") -> str:
    return f"""
model joined
input 3x64x64
backbone trunk = timm("test_efficientnet")
neck pyramid = bifpn(trunk, channels = 16, repeats = 1, max_level = 5)
dataset shapes = synthetic(count = 48, size = 64, seed = 0)
dataset cars = coco("{cars}", images = "{cars.parent / 'images'}", split = 0.75/0.25)
task objects: detect({datasets}) {{
    classes = {classes}
    head = efficientdet(depth = 1, anchor_scale = 2)
}}
{extra}
train {{ batch_size = 8; epochs = 2; optimizer = adamw(lr = 0.003); workers = 0 }}
"""


@pytest.fixture
def cars(tmp_path) -> Path:
    return _write_cars(tmp_path / "cars")


def _loaders(spec, size: int = 64) -> StreamLoaders:
    labels = {label.task: label for label in task_labels(spec)}
    return StreamLoaders(
        plan_streams(spec), spec.datasets, labels, image_size=(size, size), mean=(0.5,) * 3, std=(0.5,) * 3,
        seed=0, workers=0, on_corrupt="error", device=torch.device("cpu"),
    )


# ---------------------------------------------------------------- the language


def test_a_task_reads_several_datasets_joined_with_plus(cars):
    spec = compile_text(
        _joined_spec(cars, extra="task kind: classify(shapes) { classes = [circle, square, triangle] }")
    )
    assert spec.spec.train.tasks["objects"].datasets == ("shapes", "cars")
    streams = plan_streams(spec.spec)
    assert [(s.datasets, s.tasks) for s in streams] == [(("shapes", "cars"), ("objects",)), (("shapes",), ("kind",))]
    assert streams[0].dataset == "shapes+cars"
    assert task_labels(spec.spec)[0] == TaskLabels("objects", "detect", tuple(CLASSES), partial=True)
    assert task_labels(spec.spec)[1].partial is False


@pytest.mark.parametrize(
    ("datasets", "classes", "extra", "message", "column"),
    [
        ("shapes + trucks", None, "", "uses dataset 'trucks', which is not declared", 31),
        ("shapes + shapes", None, "", "lists dataset 'shapes' twice", 31),
        ("shapes + \"cars\"", None, "", "must be a dataset name, or several joined with +", 31),
        ("shapes + cars", "4", "", "does not name its classes", 15),
        ("shapes + more", None, "dataset more = synthetic(count = 8)", "joins the synthetic datasets", 31),
    ],
)
def test_joined_dataset_mistakes_point_at_the_spec(cars, datasets, classes, extra, message, column):
    text = _joined_spec(cars, datasets=datasets, classes=classes or "[circle, square, triangle, car]")
    text = text.replace("task objects", f"{extra}\ntask objects")
    with pytest.raises(MtdslError, match=message) as error:
        compile_text(text)
    assert error.value.span is not None and error.value.span.column == column, error.value.render()


# ---------------------------------------------------------------- data


def test_each_joined_image_marks_the_classes_its_own_dataset_annotates(cars):
    spec = compile_text(_joined_spec(cars)).spec
    loaders = _loaders(spec)
    train = loaders.splits[0]["train"]
    assert len(train) == round(48 * 0.7) + 12  # the shapes' default split (0.7/0.15/0.15), then 0.75 of 16 cars
    batch = next(iter(loaders._loader(train, 0, batch_sampler=[[(i, 0) for i in range(len(train))]])))
    target = batch["targets"]["objects"]
    from_cars = torch.tensor([isinstance(ref, str) for ref in train.examples.images])
    assert from_cars.sum() == 12
    assert target["annotated"][~from_cars].tolist() == [[True, True, True, False]] * int((~from_cars).sum())
    assert target["annotated"][from_cars].tolist() == [[False, False, False, True]] * 12
    car_classes = torch.cat([c for c, car in zip(target["classes"], from_cars) if car])
    assert car_classes.unique().tolist() == [3]  # every car box is class 3; the people were dropped
    shape_classes = torch.cat([c for c, car in zip(target["classes"], from_cars) if not car])
    assert set(shape_classes.tolist()) <= {0, 1, 2} and len(shape_classes) > 0
    assert set(loaders.splits[0]) == {"train", "val", "test"}  # the cars have no test split; the shapes do
    assert loaders.describe() == ["shapes+cars → objects: 46 train · 11 val · 7 test"]
    assert all(isinstance(ref, int) for ref in loaders.splits[0]["test"].examples.images)


def test_unannotated_classes_get_no_gradient_on_batches_from_the_loaders(cars):
    compiled = compile_text(_joined_spec(cars))
    spec = compiled.spec
    setup = detection_setups(spec, compiled.graph)["objects"]
    loaders = _loaders(spec)
    batch = loaders.next_batch(0)
    from_cars = batch["targets"]["objects"]["annotated"][:, 3]
    assert 0 < int(from_cars.sum()) < len(from_cars), "the seeded batch mixes both datasets"

    anchors = setup.anchor_boxes()
    logits = torch.zeros(len(from_cars), len(anchors), len(CLASSES), requires_grad=True)
    deltas = torch.zeros(len(from_cars), len(anchors), 4, requires_grad=True)
    DetectionCriterion(DetectionLoss(), setup)((logits, deltas), batch["targets"]["objects"]).backward()
    gradient = logits.grad
    assert torch.count_nonzero(gradient[from_cars][..., :3]) == 0  # no "no circle here" from a car scene
    assert torch.count_nonzero(gradient[~from_cars][..., 3]) == 0  # no "no car here" from a shapes image
    assert torch.count_nonzero(gradient[from_cars][..., 3]) > 0
    assert torch.count_nonzero(gradient[~from_cars][..., :3]) > 0


def test_a_class_no_dataset_annotates_is_an_error(cars):
    spec = compile_text(_joined_spec(cars, classes="[circle, square, triangle, car, bus]")).spec
    with pytest.raises(DataError, match="task 'objects' learns class 'bus', but none of shapes \\+ cars labels it"):
        _loaders(spec)


def test_a_dataset_with_none_of_the_task_classes_is_an_error(cars):
    spec = compile_text(_joined_spec(cars, classes="[circle, square, triangle]")).spec
    with pytest.raises(DataError, match="labels none of the classes of the task that reads it"):
        _loaders(spec)


def test_classify_tasks_join_folders_that_hold_some_of_their_classes(tmp_path):
    for folder, labels in (("a", ["cat", "dog"]), ("b", ["dog", "fox"])):
        for label in labels:
            (tmp_path / folder / label).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (8, 8), "white").save(tmp_path / folder / label / f"{i}.png")
    task = TaskLabels("animal", "classify", ("cat", "dog", "fox"), partial=True)
    parts = {
        name: read_splits(FolderDataset(root=str(tmp_path / name), split=[0.5, 0.5]), [task]) for name in ("a", "b")
    }
    joined = join_datasets(parts, [task])
    everything = sorted(joined["train"].targets["animal"].tolist() + joined["val"].targets["animal"].tolist())
    assert everything == [0, 0, 1, 1, 1, 1, 2, 2]
    with pytest.raises(DataError, match="learns class 'owl', but none of a \\+ b labels it"):
        owl = TaskLabels("animal", "classify", ("cat", "dog", "fox", "owl"), partial=True)
        join_datasets({name: read_splits(FolderDataset(root=str(tmp_path / name), split=[0.5, 0.5]), [owl])
                       for name in ("a", "b")}, [owl])


def test_segment_tasks_join_mask_datasets_of_the_same_classes(tmp_path):
    """Synthetic masks (0 background, 1 circle, 2 square, 3 triangle) joined with photos whose masks
    write the square as 7 and the circle as 9 (class_map puts them in the task's order)."""
    for folder in ("images", "masks"):
        (tmp_path / "photos" / folder).mkdir(parents=True)
    values = np.zeros((40, 40), np.uint8)
    values[5:15, 5:15], values[20:30, 20:30] = 7, 9
    for index in range(4):
        Image.new("RGB", (40, 40), "white").save(tmp_path / "photos" / "images" / f"{index}.png")
        Image.fromarray(values).save(tmp_path / "photos" / "masks" / f"{index}.png")
    text = f"""
model regions
input 3x64x64
backbone trunk = timm("test_efficientnet")
neck pyramid = fpn(trunk, channels = 16, max_level = 5)
dataset shapes = synthetic(count = 16, size = 64, seed = 0)
dataset photos = masks(images = "{tmp_path / 'photos' / 'images'}", masks = "{tmp_path / 'photos' / 'masks'}",
                       class_map = [0, 9, 7, 3], split = 0.5/0.5)
task regions: segment(shapes + photos) {{ classes = [background, circle, square, triangle] }}
train {{ batch_size = 8 }}
"""
    loaders = _loaders(compile_text(text).spec)
    train = loaders.splits[0]["train"]
    assert len(train) == round(16 * 0.7) + 2
    photo = next(i for i, ref in enumerate(train.examples.images) if isinstance(ref, str))
    target = train[(photo, 0)]["targets"]["regions"]
    assert target["annotated"].tolist() == [True] * 4  # the photos' values name every class of the task
    mask = target["mask"]
    assert set(mask.unique().tolist()) == {0, 1, 2}  # square photos: no letterbox padding
    assert int((mask == 2).sum()) == int((mask == 1).sum()) > 0


# ---------------------------------------------------------------- a run


def test_a_two_epoch_run_on_joined_datasets_reports_every_class(cars, tmp_path):
    spec = tmp_path / "joined.mtl"
    spec.write_text(_joined_spec(cars), encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "--quiet"]) == 0
    log = MetricsLog.read(run / "metrics.jsonl")
    val = next(r for r in log if r["event"] == "val")
    assert {f"AP/{name}" for name in CLASSES} <= set(val["metrics"]["objects"])
    assert (run / "predictions" / "shapes+cars.png").stat().st_size > 0
    assert "Stream(('shapes', 'cars'), tasks=('objects',)" in (run / "train.py").read_text()


@requires_shared_data("oxford-pets-3class")
@requires_shared_data("coco128")
@pytest.mark.data
def test_pet_heads_and_coco_boxes_train_one_detector():
    """Thesis §6.5: a pet-head detector and COCO's people, cats and dogs in one head. A COCO cat is not a
    'pet' head, and a pets image says nothing about people, so each masks what the other labels."""
    pets, coco = SHARED_DATA / "oxford-pets-3class", SHARED_DATA / "coco128"
    text = f"""
model pets_and_people
input 3x128x128
backbone trunk = timm("test_efficientnet")
neck pyramid = bifpn(trunk, channels = 16, repeats = 1, max_level = 5)
dataset pets = coco("{pets}/annotations/instances_heads.json", images = "{pets}/images", one_class = "pet",
                    keep_empty = false)
dataset coco = coco("{coco}/annotations/instances_train2017.json", images = "{coco}/images/train2017")
task objects: detect(pets + coco) {{ classes = [pet, person, cat, dog] }}
train {{ batch_size = 16; workers = 0 }}
"""
    compiled = compile_spec(tiny_backbones(compile_text(text).spec))
    spec = compiled.spec
    loaders = _loaders(spec, 128)
    train = loaders.splits[0]["train"].examples
    annotated = [target.annotated.tolist() for target in train.targets["objects"]]
    assert annotated.count([True, False, False, False]) == round(296 * 0.8)
    assert annotated.count([False, True, True, True]) == round(128 * 0.8)
    batch = loaders.next_batch(0)
    setup = detection_setups(spec, compiled.graph)["objects"]
    logits = torch.zeros(len(batch["index"]), len(setup.anchor_boxes()), 4, requires_grad=True)
    deltas = torch.zeros(len(batch["index"]), len(setup.anchor_boxes()), 4, requires_grad=True)
    DetectionCriterion(DetectionLoss(), setup)((logits, deltas), batch["targets"]["objects"]).backward()
    mask = batch["targets"]["objects"]["annotated"]
    assert torch.count_nonzero(logits.grad * ~mask[:, None, :]) == 0

