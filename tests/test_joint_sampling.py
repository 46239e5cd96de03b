"""``sampling = joint``: one training stream whose examples are the datasets' photos merged by photo.

The thesis' pets model reads breeds from a CSV, head boxes from a COCO file (for
some of the photos) and outlines from mask files, all over one ``images/``
folder. With joint sampling each photo goes through the backbone once per step
for every task that labels it; a task whose datasets do not label a photo gets
its kind's unknown target there, which teaches it nothing. Validation and test
stay per dataset, so the numbers compare with single-task models.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mtdsl.cli import main
from mtdsl.compiler import compile_text
from mtdsl.errors import SpecValueError
from mtdsl.spec.streams import plan_streams
from mtdsl.train.data.joint import IS_UNKNOWN, UNKNOWN_TARGETS
from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.data.tasks import task_labels
from mtdsl.train.loop.runtime import images_per_task, load_generated
from mtdsl.train.run.report import MetricsLog

PHOTOS = 24
BOXED = range(0, PHOTOS, 2)  # the COCO file labels every other photo
TAGGED = range(12)  # the tags CSV labels the first half
SIZE = 32


@pytest.fixture(scope="module")
def pets(tmp_path_factory) -> Path:
    """24 photos; ``breeds.csv`` labels them all, ``tags.csv`` (multilabel) and ``sizes.csv`` (binary) the first
    12, ``heads.json`` boxes on the even ones, ``masks/`` an outline for each."""
    root = tmp_path_factory.mktemp("pets")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    images, annotations = [], []
    for index in range(PHOTOS):
        picture = np.full((SIZE, SIZE, 3), (7 * index % 255, 90, 140), dtype=np.uint8)
        picture[8:24, 4 + index % 8 : 20 + index % 8] = 250
        Image.fromarray(picture).save(root / "images" / f"{index}.png")
        mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
        mask[8:24, 4 + index % 8 : 20 + index % 8] = 1
        Image.fromarray(mask).save(root / "masks" / f"{index}.png")
        if index in BOXED:
            images.append({"id": index, "file_name": f"{index}.png", "width": SIZE, "height": SIZE})
            annotations.append({"id": index, "image_id": index, "category_id": 1, "bbox": [4 + index % 8, 8, 16, 16],
                                "area": 256, "iscrowd": 0})
    (root / "heads.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                 "categories": [{"id": 1, "name": "pet"}]}))
    for name, rows in (("breeds", [(f"{i}.png", ["cat", "dog"][i % 2]) for i in range(PHOTOS)]),
                       ("tags", [(f"{i}.png", ["indoor", "outdoor", "indoor outdoor"][i % 3]) for i in TAGGED]),
                       ("sizes", [(f"{i}.png", ["small", "large"][i // 2 % 2]) for i in TAGGED])):
        with (root / f"{name}.csv").open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["file_name", "labels"])
            writer.writerows(rows)
    return root


def _spec(root: Path, *, sampling: str = "joint", tasks: str = "", datasets: str = "", train: str = "",
          epochs: str = "epochs = 1") -> str:
    split = "split = 0.5/0.25/0.25"
    return f"""
model pets
input 3x{SIZE}x{SIZE}
backbone trunk = timm("test_resnet")
neck pyramid = fpn(trunk, channels = 16, max_level = 5)
dataset breeds = csv("{root / 'breeds.csv'}", images = "{root / 'images'}", {split})
dataset tags = csv("{root / 'tags.csv'}", images = "{root / 'images'}", {split})
dataset sizes = csv("{root / 'sizes.csv'}", images = "{root / 'images'}", {split})
dataset heads = coco("{root / 'heads.json'}", images = "{root / 'images'}", {split})
dataset outlines = masks(images = "{root / 'images'}", masks = "{root / 'masks'}", classes = [background, pet],
                         {split})
dataset shapes = synthetic(count = 16, size = {SIZE})
{datasets}
task breed: classify(breeds) {{ classes = [cat, dog] }}
task where: multilabel(tags) {{ classes = [indoor, outdoor] }}
task large: binary(sizes) {{ positive = large; balanced = false }}
task pet: detect(heads) {{ classes = [pet] }}
task outline: segment(outlines) {{ classes = [background, pet] }}
task corners: keypoints(shapes) {{ classes = [top_left, top_right, bottom_right, bottom_left] }}
{tasks}
train {{ batch_size = 4; {epochs}; workers = 0; sampling = {sampling} {train} }}
"""


def _loaders(text: str) -> StreamLoaders:
    spec = compile_text(text).spec
    labels = {label.task: label for label in task_labels(spec)}
    return StreamLoaders(plan_streams(spec), spec.datasets, labels, image_size=(SIZE, SIZE), mean=(0.5,) * 3,
                         std=(0.5,) * 3, seed=0, workers=0, on_corrupt="error", device=torch.device("cpu"))


@pytest.fixture(scope="module")
def joint(pets) -> StreamLoaders:
    return _loaders(_spec(pets))


KINDS = {"breed": "classify", "where": "multilabel", "large": "binary", "pet": "detect", "outline": "segment",
         "corners": "keypoints"}


def _photo(image) -> int | str:
    """A synthetic sample's index, or a photo file's stem."""
    return image if isinstance(image, int) else Path(str(image)).stem


# ---------------------------------------------------------------- merging by photo


def test_one_stream_trains_every_task_and_each_dataset_is_read_for_its_own_tasks(joint):
    assert len(joint.streams) == 1 and joint.streams[0].tasks == ("breed", "where", "large", "pet", "outline",
                                                                    "corners")
    assert [part.dataset for part, _ in joint.groups] == ["breeds", "tags", "sizes", "heads", "outlines", "shapes"]


def test_a_photo_several_datasets_label_is_one_example_with_each_of_their_targets(joint):
    merged = joint.splits[0]["train"].examples
    photos = [_photo(image) for image in merged.images]
    assert len(photos) == len(set(photos))  # each photo once
    by_dataset = {part.dataset: {_photo(i) for i in splits["train"].examples.images} for part, splits in joint.groups}
    file_photos = set().union(*(by_dataset[name] for name in ("breeds", "tags", "sizes", "heads", "outlines")))
    assert len(merged) == len(file_photos) + len(by_dataset["shapes"])
    for index, image in enumerate(merged.images):
        photo = _photo(image)
        for task, dataset in (("breed", "breeds"), ("where", "tags"), ("large", "sizes"), ("pet", "heads"),
                              ("outline", "outlines")):
            labelled = isinstance(image, str) and photo in by_dataset[dataset]
            unknown = bool(IS_UNKNOWN[KINDS[task]](merged.targets[task][index : index + 1])[0])
            assert unknown != labelled, (task, image)
        assert bool(IS_UNKNOWN["keypoints"](merged.targets["corners"][index : index + 1])[0]) == isinstance(image, str)
    breed = next(i for i, image in enumerate(merged.images) if isinstance(image, str))
    assert merged.targets["breed"][breed] == int(_photo(merged.images[breed])) % 2  # the CSV's own label


def test_every_kind_registers_an_unknown_target_its_reader_knows(joint):
    merged = joint.splits[0]["train"].examples
    for task, kind in KINDS.items():
        made = UNKNOWN_TARGETS[kind](merged.targets[task], 3)
        assert len(made) == 3 and IS_UNKNOWN[kind](made).all()


def test_evaluation_stays_on_each_datasets_own_splits(pets, joint):
    alone = _loaders(_spec(pets, sampling="proportional"))
    for (part, splits), (stream, own) in zip(joint.groups, alone.groups, strict=True):
        assert part.tasks == stream.tasks
        for split in ("val", "test"):
            assert splits[split].examples.images == own[split].examples.images
    assert joint.splits_by_task("test", "val") == alone.splits_by_task("test", "val")


def test_images_per_task_count_only_the_photos_that_label_the_task(joint):
    merged = joint.splits[0]["train"].examples
    labelled = {task: int((~IS_UNKNOWN[kind](merged.targets[task])).sum()) for task, kind in KINDS.items()}
    assert labelled["pet"] < labelled["outline"] < len(merged)
    passes = 3
    draws = [0] * (passes * len(merged) // 4)
    counted = images_per_task(draws, joint.streams, joint.shares)
    assert counted == {task: round(len(draws) * 4 * labelled[task] / len(merged)) for task in KINDS}


# ---------------------------------------------------------------- one step: every labelled task learns, no other


@pytest.fixture(scope="module")
def loop(pets, tmp_path_factory):
    spec = tmp_path_factory.mktemp("spec") / "pets.mtl"
    spec.write_text(_spec(pets))
    out = spec.parent / "compiled"
    assert main(["compile", str(spec), "--out", str(out)]) == 0
    return load_generated(out / "train.py")


def _batch(loaders: StreamLoaders, indices: list[int]) -> dict:
    dataset = loaders.splits[0]["train"]
    return next(iter(loaders._loader(dataset, 0, batch_sampler=[[(i, 0) for i in indices]])))


def _losses(loop, model, batch) -> dict[str, torch.Tensor]:
    outputs = model(batch["image"])
    return {task: loop.LOSSES[task](outputs[task], batch["targets"][task]) for task in loop.TASKS}


def _head_gradients(model, loss: torch.Tensor) -> dict[str, float]:
    model.zero_grad(set_to_none=False)
    loss.backward()
    sums: dict[str, float] = {}
    for name, parameter in model.named_parameters():
        for task in KINDS:
            if task in name.split(".") and parameter.grad is not None:
                sums[task] = sums.get(task, 0.0) + float(parameter.grad.abs().sum())
    return sums


def test_a_step_trains_the_heads_of_the_tasks_its_photos_label_and_leaves_the_others_exactly_still(joint, loop):
    torch.manual_seed(0)
    model = loop.build_model(torch.device("cpu"), load_pretrained=False).eval()  # eval: examples do not interact
    merged = joint.splits[0]["train"].examples
    unboxed = [i for i, image in enumerate(merged.images) if IS_UNKNOWN["detect"](merged.targets["pet"][i : i + 1])[0]
               and isinstance(image, str)][:3]
    synthetic = [i for i, image in enumerate(merged.images) if isinstance(image, int)][:2]
    losses = _losses(loop, model, _batch(joint, unboxed + synthetic))
    gradients = _head_gradients(model, sum(losses.values()))
    assert gradients["pet"] == 0.0 and losses["pet"].item() == 0.0  # none of the photos has a head box
    assert all(gradients[task] > 0 for task in ("breed", "outline", "corners"))
    boxed = [i for i, image in enumerate(merged.images) if isinstance(image, str) and i not in unboxed][:2]
    gradients = _head_gradients(model, sum(_losses(loop, model, _batch(joint, boxed)).values()))
    assert gradients["pet"] > 0 and gradients["corners"] == 0.0  # no synthetic image: no keypoints


def test_unknown_examples_add_nothing_to_each_kinds_loss_and_get_no_gradient(joint, loop):
    """Each kind's loss on known and unknown examples is its loss on the known ones alone (no dilution), and
    the outputs of the unknown ones get exactly zero gradient."""
    torch.manual_seed(0)
    model = loop.build_model(torch.device("cpu"), load_pretrained=False).eval()
    merged = joint.splits[0]["train"].examples
    for task, kind in KINDS.items():
        unknown = IS_UNKNOWN[kind](merged.targets[task])
        known_rows = np.flatnonzero(~unknown)[:2].tolist()
        unknown_rows = np.flatnonzero(unknown)[:2].tolist()
        mixed = _batch(joint, known_rows + unknown_rows)
        alone = _batch(joint, known_rows)
        with torch.no_grad():
            expected = loop.LOSSES[task](model(alone["image"])[task], alone["targets"][task])
        outputs = model(mixed["image"])[task]
        leaves = outputs if isinstance(outputs, tuple) else (outputs,)
        leaves = tuple(leaf.detach().requires_grad_() for leaf in leaves)
        loss = loop.LOSSES[task](leaves if isinstance(outputs, tuple) else leaves[0], mixed["targets"][task])
        assert torch.allclose(loss, expected, atol=1e-5), (task, loss, expected)
        loss.backward()
        for leaf in leaves:
            grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
            assert torch.count_nonzero(grad[len(known_rows):]) == 0, task
            if kind != "detect":
                assert torch.count_nonzero(grad[: len(known_rows)]) > 0, task


# ---------------------------------------------------------------- located errors


@pytest.mark.parametrize("change, message, fix", [
    ({"tasks": "task odd: binary(sizes) { positive = large }"}, "binary task 'odd' draws balanced batches",
     "balanced = false on task 'odd'"),
    ({"tasks": "task flipped: classify(breeds) { classes = [cat, dog]; augment = [flip] }"},
     "task 'flipped' sets its own augment", "remove augment"),
    ({"tasks": "task big: classify(breeds) { classes = [cat, dog]; batch_size = 2 }"},
     "task 'big' sets its own batch_size", "in train { }"),
    ({"datasets": "dataset more = csv(\"BREEDS\", images = \"IMAGES\", split = 0.5/0.25/0.25, augment = [flip])",
      "tasks": "task again: classify(more) { classes = [cat, dog] }"},
     "datasets 'breeds' and 'more' augment differently", "the same augment"),
    ({"datasets": "dataset more = csv(\"BREEDS\", images = \"IMAGES\", split = 0.5/0.25/0.25, resize = squash)",
      "tasks": "task again: classify(more) { classes = [cat, dog] }"},
     "datasets 'breeds' and 'more' resize differently", "the same resize"),
    ({"datasets": "dataset other = synthetic(count = 20, size = 32)",
      "tasks": "task shape: classify(other) { classes = 3 }"},
     "synthetic datasets 'shapes' and 'other' differ", "read both tasks from 'shapes'"),
])
def test_what_joint_batches_cannot_serve_is_a_located_error_with_its_fix(pets, change, message, fix):
    change = {key: value.replace("BREEDS", str(pets / "breeds.csv")).replace("IMAGES", str(pets / "images"))
              for key, value in change.items()}
    text = _spec(pets, **change)
    with pytest.raises(SpecValueError) as caught:
        compile_text(text, path="pets.mtl")
    error = caught.value
    assert message in error.message and fix in (error.hint or "")
    assert error.span is not None
    shown = str(error)
    assert "pets.mtl:" in shown
    line = text.splitlines()[error.span.line - 1]
    assert any(word in line for word in ("odd", "flipped", "big", "more", "other")), line


# ---------------------------------------------------------------- end to end


def test_mtdsl_train_runs_a_joint_spec_and_reports_each_task_on_its_own_split(pets, tmp_path):
    spec = tmp_path / "pets.mtl"
    spec.write_text(_spec(pets))
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "--workers", "0", "--quiet"]) == 0
    records = MetricsLog.read(run / "metrics.jsonl")
    trained = next(r for r in records if r["event"] == "train")
    test = next(r for r in records if r["event"] == "test")
    assert set(test["main"]) == set(KINDS)
    assert trained["ratios"] == {"+".join(KINDS): 1.0}
    images = trained["images"]
    assert images["pet"] < images["outline"] and images["corners"] < images["breed"]


def test_a_joint_run_resumed_after_its_first_epoch_ends_as_the_uninterrupted_one(pets, tmp_path):
    from test_training import _rerun_until, _without_time

    spec = tmp_path / "pets.mtl"
    spec.write_text(_spec(pets, epochs="phase first { epochs = 1 }; phase second { epochs = 1 }",
                          train="; weighting = uncertainty"))
    assert main(["train", str(spec), "--out", str(tmp_path / "whole"), "--workers", "0", "--quiet"]) == 0
    stopped = _rerun_until(spec, tmp_path / "stopped", epochs=1)
    assert main(["train", str(spec), "--out", str(stopped), "--workers", "0", "--quiet", "--resume"]) == 0
    whole, resumed = (MetricsLog.read(run / "metrics.jsonl") for run in (tmp_path / "whole", stopped))
    trained = [[r for r in records if r["event"] == "train"] for records in (whole, resumed)]
    assert trained[1] == _without_time(trained[0], trained[1])
    assert [r for r in resumed if r["event"] == "val"] == [r for r in whole if r["event"] == "val"]


def test_two_processes_train_a_joint_spec_on_shares_of_the_same_batches(pets, tmp_path):
    """DDP shares each joint batch between the ranks as it shares any stream's. (The losses are not the
    one-process ones: the neck and heads normalise each rank's half, and each rank averages over its own
    known examples.)"""
    import subprocess
    import sys

    spec = tmp_path / "pets.mtl"
    spec.write_text(_spec(pets, epochs="phase heads { epochs = 1; freeze = [backbones] }"))
    assert main(["train", str(spec), "--out", str(tmp_path / "one"), "--workers", "0", "--quiet"]) == 0
    result = subprocess.run([sys.executable, "-m", "mtdsl", "train", str(spec), "--nproc", "2", "--workers", "0",
                             "--out", str(tmp_path / "two"), "--quiet"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    logs = {name: MetricsLog.read(tmp_path / name / "metrics.jsonl") for name in ("one", "two")}
    trained = {name: [r for r in log if r["event"] == "train"] for name, log in logs.items()}
    assert [r["processes"] for r in trained["two"]] == [2]
    assert [r["images"] for r in trained["two"]] == [r["images"] for r in trained["one"]]
    assert set(next(r for r in logs["two"] if r["event"] == "test")["metrics"]) == set(KINDS)


@pytest.mark.parametrize("combine", ["join", "merge"])
def test_synthetic_examples_of_two_generator_configs_are_refused_when_combined(combine):
    import numpy as np

    from mtdsl.spec.data import SyntheticDataset
    from mtdsl.train.data.examples import Examples, join_examples
    from mtdsl.train.data.joint import merge_by_photo
    from mtdsl.train.data.tasks import TaskLabels

    first, second = SyntheticDataset(count=4, size=32, seed=0), SyntheticDataset(count=4, size=32, seed=1)
    parts = [Examples(tuple(range(4)), {"a": np.zeros(4, dtype=np.int64)}, config) for config in (first, second)]
    with pytest.raises(ValueError, match=f"cannot {combine} synthetic examples of different generator configs"):
        if combine == "join":
            join_examples(parts)
        else:
            merge_by_photo({"d1": parts[0], "d2": parts[1]}, {"d1": ["a"], "d2": ["a"]},
                           [TaskLabels("a", "classify", 3)])
    same = [Examples(tuple(range(4)), {"a": np.zeros(4, dtype=np.int64)}, first) for _ in range(2)]
    assert join_examples(same).synthetic == first
