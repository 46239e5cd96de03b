"""Partial labels for every task kind, as detection has them (``tests/test_joined_datasets.py``).

A task that joins datasets learns the union of their classes; each image says
something only about the classes its own dataset labels. A manifest cell that
holds the dataset's ``unknown`` marker says nothing at all. So:

* binary and multilabel targets carry nan where the image's dataset does not
  say, and the losses give those elements exactly zero gradient;
* a segment task's images carry the classes their dataset labels, and the
  loss is a softmax over those alone: a class a dataset does not label gets
  exactly zero gradient from its images, whose "background" may hide it;
* the metrics skip what is unknown;
* misuse is a located error with its fix.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, requires_shared_data
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mtdsl.cli import main
from mtdsl.compiler import compile_text
from mtdsl.errors import DataError, MtdslError
from mtdsl.nn.losses import BinaryCrossEntropy, ClassCrossEntropy, FocalLoss, SegmentationLoss, partial_cross_entropy
from mtdsl.spec.load import load_spec
from mtdsl.spec.streams import plan_streams
from mtdsl.train.data.box_mask_targets import IGNORE_INDEX
from mtdsl.train.data.labels import IGNORED_CLASS
from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.data.tasks import task_labels
from mtdsl.train.metrics.labels import BinaryMetric, ClassifyMetric, MultilabelMetric
from mtdsl.train.metrics.segmentation import SegmentationMetric
from mtdsl.train.run.report import MetricsLog


def _images(folder: Path, count: int, size: int = 32) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        Image.new("RGB", (size, size), (20 * index % 255, 90, 140)).save(folder / f"{index}.png")
        names.append(f"{index}.png")
    return names


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["file_name", "labels"])
        writer.writerows(rows)
    return path


@pytest.fixture
def manifests(tmp_path) -> Path:
    """``pets.csv`` labels cats and dogs (one row unknown), ``streets.csv`` people and cars (no "cat" ever)."""
    names = _images(tmp_path / "images", 16)
    pets = [(name, ["cat", "dog", "cat dog", ""][i % 4]) for i, name in enumerate(names[:8])]
    pets[5] = (pets[5][0], "?")
    _csv(tmp_path / "pets.csv", pets)
    _csv(tmp_path / "streets.csv", [(name, ["person", "car", "person car", ""][i % 4])
                                    for i, name in enumerate(names[8:])])
    return tmp_path


def _tags_spec(root: Path, *, task: str = "task tags: multilabel(pets + streets) { classes = [cat, dog, person, car] }",
               streets: str = "", extra: str = "") -> str:
    return f"""
model tags
input 3x32x32
backbone trunk = timm("test_resnet")
dataset pets = csv("{root / 'pets.csv'}", images = "{root / 'images'}", unknown = "?", split = 0.5/0.5)
dataset streets = csv("{root / 'streets.csv'}", images = "{root / 'images'}", split = 0.5/0.5{streets})
{task}
{extra}
train {{ batch_size = 2; epochs = 1; workers = 0 }}
"""


def _loaders(spec, size: int = 32) -> StreamLoaders:
    labels = {label.task: label for label in task_labels(spec)}
    return StreamLoaders(
        plan_streams(spec), spec.datasets, labels, image_size=(size, size), mean=(0.5,) * 3, std=(0.5,) * 3,
        seed=0, workers=0, on_corrupt="error", device=torch.device("cpu"),
    )


def _whole_split(loaders: StreamLoaders, split: str = "train") -> dict:
    dataset = loaders.splits[0][split]
    return next(iter(loaders._loader(dataset, 0, batch_sampler=[[(i, 0) for i in range(len(dataset))]])))


# ---------------------------------------------------------------- losses: the kind, for any input


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 6), st.integers(1, 5)),
    seed=st.integers(0, 2**16),
    pos_weight=st.sampled_from([None, 0.5, 3.0]),
    focal=st.booleans(),
)
def test_unknown_label_elements_get_exactly_zero_gradient(shape, seed, pos_weight, focal):
    generator = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape, generator=generator) * 3).requires_grad_()
    targets = (torch.rand(shape, generator=generator) > 0.5).float()
    unknown = torch.rand(shape, generator=generator) > 0.6
    targets[unknown] = float("nan")
    criterion = FocalLoss(0.25, 2.0) if focal else BinaryCrossEntropy(pos_weight)
    loss = criterion(logits, targets)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.count_nonzero(logits.grad[unknown]) == 0
    known = ~unknown
    if known.any():  # the loss is the mean over the known elements alone
        alone = logits.detach()[known].clone().requires_grad_()
        expected = criterion(alone, targets[known])
        assert torch.allclose(loss, expected, atol=1e-6)
        expected.backward()
        assert torch.allclose(logits.grad[known] * known.sum(), alone.grad * known.sum(), atol=1e-5)
    else:
        assert loss.item() == 0.0


@settings(max_examples=30, deadline=None)
@given(
    images=st.integers(1, 3),
    classes=st.integers(2, 5),
    seed=st.integers(0, 2**16),
    smoothing=st.sampled_from([0.0, 0.1]),
    dice=st.sampled_from([0.0, 0.5]),
)
def test_a_segment_class_an_image_does_not_label_gets_exactly_zero_gradient(images, classes, seed, smoothing, dice):
    generator = torch.Generator().manual_seed(seed)
    annotated = torch.rand(images, classes, generator=generator) > 0.4
    annotated[:, 0] = True  # every image labels at least one class
    annotated[0, 1] = True  # and one image two, so something is learned
    targets = torch.full((images, 6, 6), IGNORE_INDEX, dtype=torch.long)
    for n in range(images):
        own = torch.nonzero(annotated[n]).flatten()
        picks = torch.randint(len(own), (6, 6), generator=generator)
        labelled = torch.rand(6, 6, generator=generator) > 0.2
        targets[n][labelled] = own[picks][labelled]
    logits = torch.randn(images, classes, 3, 3, generator=generator).requires_grad_()  # upsampled to 6x6
    loss = SegmentationLoss(smoothing, dice)(logits, {"mask": targets, "annotated": annotated})
    loss.backward()
    assert torch.isfinite(loss)
    gradient = logits.grad.abs().sum(dim=(2, 3))
    assert torch.count_nonzero(gradient[~annotated]) == 0
    assert gradient[0, 1] > 0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), smoothing=st.sampled_from([0.0, 0.1, 0.3]))
def test_with_every_class_annotated_partial_cross_entropy_is_cross_entropy(seed, smoothing):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 5, 5, generator=generator)
    targets = torch.randint(4, (2, 5, 5), generator=generator)
    targets[0, :2] = IGNORE_INDEX
    every = torch.ones(2, 4, dtype=torch.bool)
    expected = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, label_smoothing=smoothing)
    assert torch.allclose(partial_cross_entropy(logits, targets, every, smoothing), expected, atol=1e-6)


def test_partial_cross_entropy_is_a_softmax_over_the_annotated_classes():
    logits = torch.tensor([[1.0, 2.0, -1.0, 0.5]])[:, :, None, None]
    annotated = torch.tensor([[True, False, True, True]])
    targets = torch.tensor([[[2]]])
    kept = torch.tensor([1.0, -1.0, 0.5])
    expected = -torch.log_softmax(kept, dim=0)[1]
    assert torch.allclose(partial_cross_entropy(logits, targets, annotated), expected)


# ---------------------------------------------------------------- metrics skip what is unknown


def test_binary_and_multilabel_metrics_count_known_targets_only():
    outputs = torch.tensor([[2.0, -1.0], [-3.0, 1.0], [1.0, 1.0]])
    targets = torch.tensor([[1.0, float("nan")], [float("nan"), 1.0], [0.0, float("nan")]])
    metric = MultilabelMetric(2)
    metric.update(outputs, targets)
    assert (metric.tp.tolist(), metric.fp.tolist(), metric.tn.tolist(), metric.fn.tolist()) == (
        [1, 1], [1, 0], [0, 0], [0, 0])
    binary = BinaryMetric(1)
    binary.update(outputs[:, 0], targets[:, 0])
    assert (binary.tp, binary.fp, binary.tn, binary.fn) == (1, 1, 0, 0)


def test_the_classify_metric_counts_known_targets_only():
    metric = ClassifyMetric(3)
    metric.update(torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]]),
                  torch.tensor([0, IGNORED_CLASS, 1]))
    assert metric.confusion.sum() == 2 and metric.compute()["accuracy"] == 0.5
    metric.update(torch.zeros(2, 3), torch.tensor([IGNORED_CLASS, IGNORED_CLASS]))  # a batch of unknowns only
    assert metric.confusion.sum() == 2 and metric.compute()["accuracy"] == 0.5
    alone = ClassifyMetric(3)
    alone.update(torch.zeros(2, 3), torch.tensor([IGNORED_CLASS, IGNORED_CLASS]))
    assert alone.confusion.sum() == 0  # nothing known: nothing counted (the split's accuracy is undefined)


def test_segment_metric_predicts_each_image_among_its_annotated_classes():
    logits = torch.tensor([0.0, 1.0, 5.0])[None, :, None, None].expand(2, 3, 1, 2).clone()
    targets = torch.tensor([[[1, 1]], [[2, 2]]])
    metric = SegmentationMetric(3)
    metric.update(logits, {"mask": targets, "annotated": torch.tensor([[True, True, False], [True, True, True]])})
    # image 0 does not label class 2: its pixels are predicted among 0 and 1, so class 1, right
    assert metric.confusion.tolist() == [[0, 0, 0], [0, 2, 0], [0, 0, 2]]


# ---------------------------------------------------------------- manifests: the unknown marker


def test_an_unknown_cell_is_nan_for_multilabel_and_binary_tasks(manifests):
    text = _tags_spec(manifests, task="task tags: multilabel(pets) { classes = [cat, dog] }",
                      extra="task a_cat: binary(pets) { positive = cat; balanced = false }")
    loaders = _loaders(compile_text(text).spec)
    examples = {split: loaders.splits[0][split].examples for split in ("train", "val")}
    images = [image for part in examples.values() for image in part.images]
    tags = np.concatenate([part.targets["tags"] for part in examples.values()])
    cat = np.concatenate([part.targets["a_cat"] for part in examples.values()])
    unknown = images.index(str(manifests / "images" / "5.png"))
    assert np.isnan(tags[unknown]).all() and np.isnan(cat[unknown])
    assert not np.isnan(np.delete(tags, unknown, axis=0)).any()
    assert sorted(np.delete(cat, unknown).tolist()) == [0.0] * 3 + [1.0] * 4  # rows 0, 2, 4, 6 name a cat


def test_json_manifests_take_the_unknown_marker_as_a_string_or_a_list(tmp_path):
    names = _images(tmp_path / "images", 6)
    rows = [{"file_name": name, "labels": value} for name, value in
            zip(names, [["cat"], "?", ["?"], ["dog", "cat"], [], "dog"])]
    (tmp_path / "tags.json").write_text(json.dumps(rows))
    text = f"""
model tags
input 3x32x32
backbone trunk = timm("test_resnet")
dataset tagged = json("{tmp_path / 'tags.json'}", images = "{tmp_path / 'images'}", unknown = "?",
                      split = 0.5/0.5)
task tags: multilabel(tagged) {{ classes = [cat, dog] }}
train {{ batch_size = 2; workers = 0 }}
"""
    loaders = _loaders(compile_text(text).spec)
    found = {}
    for split in ("train", "val"):
        part = loaders.splits[0][split].examples
        found.update({Path(str(image)).name: row.tolist() for image, row in zip(part.images, part.targets["tags"])})
    assert np.isnan(found["1.png"]).all() and np.isnan(found["2.png"]).all()
    assert found["3.png"] == [1.0, 1.0] and found["4.png"] == [0.0, 0.0]


def _kinds_spec(manifests: Path, rows: list[tuple[str, str]]) -> str:
    _csv(manifests / "kinds.csv", rows)
    return _tags_spec(manifests, task="task kind: classify(pets) { classes = [cat, dog] }").replace(
        "pets.csv", "kinds.csv")


def test_an_unknown_cell_is_the_ignored_class_for_a_classify_task(manifests):
    rows = [("0.png", "cat"), ("1.png", "?"), ("2.png", "dog"), ("3.png", "dog"), ("4.png", "?"), ("5.png", "cat"),
            ("6.png", "?"), ("7.png", "dog")]
    loaders = _loaders(compile_text(_kinds_spec(manifests, rows)).spec)
    found = {}
    for split in ("train", "val"):
        part = loaders.splits[0][split].examples
        found.update({Path(str(image)).name: int(row) for image, row in zip(part.images, part.targets["kind"])})
    assert found == {"0.png": 0, "1.png": IGNORED_CLASS, "2.png": 1, "3.png": 1, "4.png": IGNORED_CLASS, "5.png": 0,
                     "6.png": IGNORED_CLASS, "7.png": 1}
    # unknown images still count as examples of the stream (other tasks' too): all 8 rows above are in its splits
    assert loaders.sizes == [len(loaders.splits[0]["train"].examples)]


def test_a_classify_cell_that_is_neither_a_class_nor_the_marker_stays_an_error(manifests):
    text = _kinds_spec(manifests, [("0.png", "cat"), ("1.png", "?"), ("2.png", "dgo"), ("3.png", "dog")])
    with pytest.raises(DataError, match=r"label 'dgo' of .*2\.png is not a class of task 'kind'") as error:
        _loaders(compile_text(text).spec)
    assert "cat, dog" in error.value.render()


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 8),
    classes=st.integers(2, 5),
    seed=st.integers(0, 2**16),
    smoothing=st.sampled_from([0.0, 0.1, 0.4]),
    weighted=st.booleans(),
)
def test_unknown_classify_targets_get_exactly_zero_gradient(rows, classes, seed, smoothing, weighted):
    """As nan binary targets: -100 rows add nothing and get no gradient; the loss is PyTorch's over the known rows."""
    generator = torch.Generator().manual_seed(seed)
    logits = (torch.randn(rows, classes, generator=generator) * 3).requires_grad_()
    targets = torch.randint(0, classes, (rows,), generator=generator)
    unknown = torch.rand(rows, generator=generator) > 0.6
    targets[unknown] = IGNORED_CLASS
    weight = torch.rand(classes, generator=generator) + 0.5 if weighted else None
    criterion = ClassCrossEntropy(weight=weight, label_smoothing=smoothing)
    assert criterion.ignore_index == IGNORED_CLASS
    loss = criterion(logits, targets)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.count_nonzero(logits.grad[unknown]) == 0
    known = ~unknown
    if known.any():
        alone = logits.detach()[known].clone().requires_grad_()
        expected = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing)(alone, targets[known])
        assert torch.allclose(loss, expected, atol=1e-6)
        expected.backward()
        assert torch.allclose(logits.grad[known], alone.grad, atol=1e-6)
    else:  # PyTorch's mean over no target is nan; a batch of unknown images teaches nothing
        assert loss.item() == 0.0


def test_the_classify_loss_is_the_class_cross_entropy():
    from mtdsl.nn.losses import CrossEntropyConfig, build_loss

    loss = build_loss(CrossEntropyConfig(label_smoothing=0.1), task_kind="classify")
    assert isinstance(loss, ClassCrossEntropy) and loss.label_smoothing == 0.1


def test_a_cell_that_mixes_the_marker_with_labels_is_an_error(manifests):
    _csv(manifests / "pets.csv", [("0.png", "cat ?"), ("1.png", "dog")])
    text = _tags_spec(manifests, task="task tags: multilabel(pets) { classes = [cat, dog] }")
    with pytest.raises(DataError, match=r"the 'labels' cell of 0\.png mixes the unknown marker '\?' with labels: cat"):
        _loaders(compile_text(text).spec)


# ---------------------------------------------------------------- joins: multilabel and binary


def test_a_joined_multilabel_task_knows_only_what_each_dataset_labels(manifests):
    spec = compile_text(_tags_spec(manifests)).spec
    loaders = _loaders(spec)
    assert loaders.describe() == ["pets+streets → tags: 8 train · 8 val"]
    batch = _whole_split(loaders)
    targets = batch["targets"]["tags"]
    from_streets = torch.tensor([int(Path(str(i)).stem) >= 8 for i in loaders.splits[0]["train"].examples.images])
    assert torch.isnan(targets[from_streets][:, :2]).all()  # a street scene says nothing of cats and dogs
    assert not torch.isnan(targets[from_streets][:, 2:]).any()
    known_pets = ~torch.isnan(targets[~from_streets]).all(dim=1)  # the one "?" row may be in train
    assert torch.isnan(targets[~from_streets][known_pets][:, 2:]).all()
    assert not torch.isnan(targets[~from_streets][known_pets][:, :2]).any()

    logits = torch.zeros(targets.shape, requires_grad=True)
    BinaryCrossEntropy(None)(logits, targets).backward()
    assert torch.count_nonzero(logits.grad[from_streets][:, :2]) == 0  # no "no cat here" from a street
    assert torch.count_nonzero(logits.grad[~from_streets][:, 2:]) == 0  # no "no car here" from a pet photo
    assert torch.count_nonzero(logits.grad[from_streets][:, 2:]) == 2 * int(from_streets.sum())
    assert torch.count_nonzero(logits.grad[~from_streets][known_pets][:, :2]) == 2 * int(known_pets.sum())


def test_a_dataset_classes_list_says_what_it_labels_even_without_positives(manifests):
    # streets.csv never names a cat; listing "cat" among its classes makes its "no cat" count
    loaders = _loaders(compile_text(_tags_spec(manifests, streets=", classes = [person, car, cat]")).spec)
    batch = _whole_split(loaders)
    from_streets = torch.tensor([int(Path(str(i)).stem) >= 8 for i in loaders.splits[0]["train"].examples.images])
    targets = batch["targets"]["tags"]
    assert (targets[from_streets][:, 0] == 0).all() and torch.isnan(targets[from_streets][:, 1]).all()


def test_a_class_no_joined_dataset_labels_is_an_error(manifests):
    text = _tags_spec(manifests, task="task tags: multilabel(pets + streets) { classes = [cat, dog, person, bus] }")
    with pytest.raises(DataError, match="task 'tags' learns class 'bus', but none of pets \\+ streets labels it"):
        _loaders(compile_text(text).spec)


def test_a_joined_dataset_that_labels_none_of_the_classes_is_an_error(manifests):
    text = _tags_spec(manifests, task="task tags: multilabel(pets + streets) { classes = [cat, dog] }")
    with pytest.raises(DataError, match=r"streets\.csv\) labels none of the classes of task 'tags': cat, dog"):
        _loaders(compile_text(text).spec)


@pytest.mark.parametrize(
    ("streets", "task", "message", "pointed"),
    [
        (", classes = [person, cra]", None, "dataset 'streets' labels class 'cra', which multilabel task 'tags' "
         "does not have", "cra"),
        (", classes = [car]", "task seen: binary(pets + streets) { positive = person }",
         "binary task 'seen' counts 'person' as yes, but dataset 'streets' labels only car", "[car]"),
    ],
)
def test_a_dataset_classes_list_that_does_not_fit_its_task_points_at_the_spec(manifests, streets, task, message,
                                                                              pointed):
    text = _tags_spec(manifests, streets=streets, **({"task": task} if task else {}))
    with pytest.raises(MtdslError, match=message) as error:
        compile_text(text)
    span = error.value.span
    assert span is not None and span.line == span.end_line, error.value.render()
    assert text.split("\n")[span.line - 1][span.column - 1 : span.end_column - 1] == pointed, error.value.render()
    assert error.value.hint


def test_a_joined_binary_task_with_unknown_cells_draws_balanced_batches_of_known_examples(manifests):
    text = _tags_spec(manifests, task="task seen: binary(pets + streets) { positive = dog }",
                      streets=', unknown = "?"')
    _csv(manifests / "streets.csv", [(f"{i}.png", ["dog", "", "?", "?"][i % 4]) for i in range(8, 16)])
    loaders = _loaders(compile_text(text).spec)
    targets = torch.from_numpy(loaders.splits[0]["train"].examples.targets["seen"])
    batch = loaders.next_batch(0)
    drawn = batch["targets"]["seen"]
    assert not torch.isnan(drawn).any() and 0 < drawn.sum() < len(drawn)  # the "?" rows are never drawn
    assert torch.isnan(targets).any()
    logits = torch.zeros(len(targets), requires_grad=True)
    BinaryCrossEntropy(None)(logits, targets).backward()
    assert torch.count_nonzero(logits.grad[torch.isnan(targets)]) == 0


# ---------------------------------------------------------------- joins: segment


def _photos(root: Path, count: int = 4) -> Path:
    """Street photos whose masks label background (0) and car (1); 2 is a class the task does not learn."""
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
    values = np.zeros((32, 32), np.uint8)
    values[4:12, 4:20], values[20:28, 20:28] = 1, 2
    for index in range(count):
        Image.new("RGB", (32, 32), "white").save(root / "images" / f"{index}.png")
        Image.fromarray(values).save(root / "masks" / f"{index}.png")
    return root


def _regions_spec(photos: Path, classes: str = "[background, circle, square, triangle, car]",
                  photo_classes: str = "[background, car], class_map = [0, 1], ignore = [2]") -> str:
    return f"""
model regions
input 3x32x32
backbone trunk = timm("test_efficientnet")
neck pyramid = fpn(trunk, channels = 16, max_level = 5)
dataset shapes = synthetic(count = 12, size = 32, seed = 0)
dataset photos = masks(images = "{photos / 'images'}", masks = "{photos / 'masks'}",
                       classes = {photo_classes}, split = 0.5/0.5)
task regions: segment(shapes + photos) {{ classes = {classes} }}
train {{ batch_size = 8; epochs = 1; workers = 0 }}
"""


def test_a_joined_segment_task_masks_the_classes_each_dataset_does_not_label(tmp_path):
    spec = compile_text(_regions_spec(_photos(tmp_path / "photos"))).spec
    loaders = _loaders(spec)
    batch = _whole_split(loaders)
    target = batch["targets"]["regions"]
    from_photos = torch.tensor([isinstance(ref, str) for ref in loaders.splits[0]["train"].examples.images])
    assert int(from_photos.sum()) == 2
    assert target["annotated"][from_photos].tolist() == [[True, False, False, False, True]] * 2
    assert target["annotated"][~from_photos].tolist() == [[True, True, True, True, False]] * int((~from_photos).sum())
    photo_mask = target["mask"][from_photos]
    assert set(photo_mask.unique().tolist()) == {0, 4, IGNORE_INDEX}  # car is class 4, value 2 is ignored
    assert int((photo_mask == IGNORE_INDEX).sum()) == 2 * 64 and int((photo_mask == 4).sum()) == 2 * 128

    logits = torch.randn(len(from_photos), 5, 32, 32, requires_grad=True)
    SegmentationLoss(dice=0.5)(logits, target).backward()
    gradient = logits.grad.abs().sum(dim=(2, 3))
    assert torch.count_nonzero(gradient[from_photos][:, 1:4]) == 0  # no "not a circle" from a photo's background
    assert torch.count_nonzero(gradient[~from_photos][:, 4]) == 0  # no "not a car" from a shapes image
    assert (gradient[from_photos][:, [0, 4]] > 0).all() and (gradient[~from_photos][:, :4] > 0).all()


def test_a_segment_dataset_with_none_of_the_task_classes_is_an_error(tmp_path):
    text = _regions_spec(_photos(tmp_path / "photos"), photo_classes="[sky, lorry, person]")
    with pytest.raises(DataError, match="labels none of the classes of the task that reads it"):
        _loaders(compile_text(text).spec)


@pytest.mark.parametrize(
    ("classes", "photo_classes", "message", "hint"),
    [
        (None, "[background, car, person]", "labels class 'person' \\(mask value 2\\), which the segment task",
         "put its mask value(s) in ignore = [...]"),
        (None, "[background, cra], class_map = [0, 1], ignore = [2]", "labels class 'cra' \\(mask value 1\\)",
         "did you mean 'car'?"),
        ("[background, circle, square, car]", None, "synthetic dataset 'shapes' labels class 'triangle' "
         "\\(mask value 3\\)", "the dataset labels every one of its"),
    ],
)
def test_a_segment_dataset_class_the_task_lacks_is_an_error_not_silently_ignored(tmp_path, classes, photo_classes,
                                                                                 message, hint):
    picked = {key: value for key, value in (("classes", classes), ("photo_classes", photo_classes)) if value}
    text = _regions_spec(_photos(tmp_path / "photos"), **picked)
    with pytest.raises(DataError, match=message) as error:
        _loaders(compile_text(text).spec)
    assert hint in error.value.render()


def test_a_segment_class_no_dataset_labels_is_an_error(tmp_path):
    text = _regions_spec(_photos(tmp_path / "photos"), classes="[background, circle, square, triangle, car, bus]")
    with pytest.raises(DataError, match="task 'regions' learns class 'bus', but none of shapes \\+ photos labels it"):
        _loaders(compile_text(text).spec)


# ---------------------------------------------------------------- a run


def test_a_run_on_partial_labels_reports_every_class(manifests, tmp_path):
    photos = _photos(tmp_path / "photos")
    text = f"""
model partial
input 3x32x32
backbone trunk = timm("test_efficientnet")
neck pyramid = fpn(trunk, channels = 16, max_level = 5)
dataset shapes = synthetic(count = 12, size = 32, seed = 0)
dataset photos = masks(images = "{photos / 'images'}", masks = "{photos / 'masks'}",
                       classes = [background, car], class_map = [0, 1], ignore = [2], split = 0.5/0.5)
dataset pets = csv("{manifests / 'pets.csv'}", images = "{manifests / 'images'}", unknown = "?", split = 0.5/0.5)
dataset streets = csv("{manifests / 'streets.csv'}", images = "{manifests / 'images'}", split = 0.5/0.5)
task regions: segment(shapes + photos) {{ classes = [background, circle, square, triangle, car] }}
task tags: multilabel(pets + streets) {{ classes = [cat, dog, person, car] }}
train {{ batch_size = 2; epochs = 1; workers = 0 }}
"""
    spec = tmp_path / "partial.mtl"
    spec.write_text(text, encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "--quiet"]) == 0
    val = next(r for r in MetricsLog.read(run / "metrics.jsonl") if r["event"] == "val")
    regions, tags = val["metrics"]["regions"], val["metrics"]["tags"]
    assert {f"iou/{name}" for name in ["background", "circle", "square", "triangle", "car"]} <= set(regions)
    assert np.isfinite(regions["miou"]) and np.isfinite(tags["accuracy"])


def test_a_classify_run_on_unknown_cells_trains_and_scores_the_known_ones(manifests, tmp_path):
    """Half the images are unknown, so some batches of two hold none known: the epoch's mean loss stays finite."""
    rows = [(f"{i}.png", "?" if i % 2 else ["cat", "dog"][i // 2 % 2]) for i in range(16)]
    spec = tmp_path / "kinds.mtl"
    spec.write_text(_kinds_spec(manifests, rows).replace("batch_size = 4", "batch_size = 2"), encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "--quiet"]) == 0
    records = MetricsLog.read(run / "metrics.jsonl")
    losses = [value for r in records if r["event"] == "train" for value in r["losses"].values()]
    assert losses and all(np.isfinite(losses))
    val = next(r for r in records if r["event"] == "val")
    assert 0.0 <= val["metrics"]["kind"]["accuracy"] <= 1.0


@requires_shared_data("camvid")
@pytest.mark.data
def test_camvid_joined_with_a_set_that_labels_four_classes_masks_the_other_seven():
    """specs/partial/road.mtl: CamVid's train folder (11 classes) + its test folder read as labelling Sky,
    Road, Car and Pedestrian. On real masks, a test-folder image gives its seven other classes no gradient."""
    spec = load_spec(ROOT / "specs" / "partial" / "road.mtl")
    loaders = _loaders(spec, 128)
    assert loaders.describe() == ["full+partial → road: 527 train · 73 val"]
    train = loaders.splits[0]["train"]
    from_partial = np.array(["/test/" in str(image) for image in train.examples.images])
    annotated = np.stack([target.annotated for target in train.examples.targets["road"]])
    assert annotated[from_partial].sum(axis=0).tolist() == [233 * labelled for labelled in
                                                            [1, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0]]
    assert annotated[~from_partial].all()
    batch = loaders.next_batch(0)
    target = batch["targets"]["road"]
    partial = ~target["annotated"][:, 1]  # no Building: a test-folder image
    assert 0 < int(partial.sum()) < len(partial), "the seeded batch mixes both sets"
    logits = torch.randn(len(partial), 11, 32, 32, requires_grad=True)  # a stride-4 head's maps
    SegmentationLoss(dice=0.5)(logits, target).backward()
    gradient = logits.grad.abs().sum(dim=(2, 3))
    seven = [1, 2, 4, 5, 6, 7, 10]
    assert torch.count_nonzero(gradient[partial][:, seven]) == 0
    assert (gradient[partial][:, [0, 3, 8, 9]] > 0).all() and (gradient[~partial] > 0).all()
