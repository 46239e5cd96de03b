"""``mtdsl predict`` on a tiny randomly initialised pets-like model, on CPU.

The detection head's class bias is raised before the checkpoint is saved, so every
image gets boxes (and so crops) without training.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mtdsl.cli import main
from mtdsl.compiler import compile_file, compile_text
from mtdsl.errors import ArtefactError, SpecNameError, SpecValueError, TrainingError
from mtdsl.nn.model import MultiTaskModel
from mtdsl.predict import predict
from mtdsl.train.run.checkpoint import save_checkpoint
from mtdsl.train.run.fingerprints import model_hash, spec_hash

SPEC = """
model pets
input 3x64x64
backbone trunk = timm("test_efficientnet")
neck pyramid = fpn(trunk, channels = 16, max_level = 5)
dataset d = synthetic()
task breed: classify(d) { classes = [a, b, c] }
task pet: detect(d) { classes = [pet]; crops = breed; head = efficientdet(max_detections = 4) }
task regions: segment(d) { classes = [background, x] }
"""

#: (width, height) of the test images: wider, square and taller than the square input.
SIZES = {"wide": (80, 50), "square": (64, 64), "tall": (30, 90)}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny convolutions are fastest on one thread, and OpenMP's spinning threads crawl when
    # other test processes share the CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def save_random_checkpoint(compilation, path: Path) -> Path:
    torch.manual_seed(0)
    model = MultiTaskModel(compilation.graph, load_pretrained=False)
    with torch.no_grad():  # sigmoid(5) ≈ 0.99: every anchor is a confident "pet" before NMS
        model.heads["pet"].class_net.predict_bias.fill_(5.0)
    return save_checkpoint({
        "model": model.state_dict(),
        "model_hash": model_hash(compilation.graph),
        "spec_hash": spec_hash(compilation.spec),
        "spec_name": compilation.spec.name,
    }, path)


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    """The spec file, its compilation, a checkpoint of it and a folder of images of several sizes."""
    folder = tmp_path_factory.mktemp("pets")
    spec_path = folder / "pets.mtl"
    spec_path.write_text(SPEC, encoding="utf-8")
    compilation = compile_file(spec_path)
    checkpoint = save_random_checkpoint(compilation, folder / "best.pt")
    images = folder / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name, (width, height) in SIZES.items():
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(images / f"{name}.png")
    return {"spec": spec_path, "compilation": compilation, "checkpoint": checkpoint, "images": images}


@pytest.fixture(scope="module")
def report(pets, tmp_path_factory):
    compilation = pets["compilation"]
    files = sorted(pets["images"].iterdir())
    return predict(compilation.spec, compilation.graph, pets["checkpoint"], files,
                   tmp_path_factory.mktemp("out"), device="cpu", batch_size=2, progress=False)


def test_every_file_is_written(report):
    names = {p.name for p in report.written}
    assert {"predictions.json", "detections.json"} <= names
    for stem in SIZES:
        assert {f"{stem}.png", f"{stem}.regions.png"} <= names
    assert all(p.is_file() for p in report.written)
    assert report.tasks == ["breed", "pet", "regions"]


def test_boxes_are_in_original_pixels_and_every_box_has_its_crop_class(report):
    predictions = json.loads(report.predictions_json.read_text())
    assert [Path(i["file"]).stem for i in predictions["images"]] == sorted(SIZES)
    for image in predictions["images"]:
        width, height = SIZES[Path(image["file"]).stem]
        assert (image["width"], image["height"]) == (width, height)
        boxes = image["tasks"]["pet"]["boxes"]
        assert 0 < len(boxes) <= 4
        for box in boxes:
            x0, y0, x1, y1 = box["box"]
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            assert box["class"] == "pet" and 0 < box["score"] <= 1
            assert box["crops"]["breed"]["class"] in ("a", "b", "c")
            assert 0 < box["crops"]["breed"]["score"] <= 1
        assert image["tasks"]["breed"]["class"] in ("a", "b", "c")
        assert image["tasks"]["breed"]["top"][0]["class"] == image["tasks"]["breed"]["class"]
        fractions = image["tasks"]["regions"]["fractions"]
        assert set(fractions) == {"background", "x"} and sum(fractions.values()) == pytest.approx(1, abs=1e-4)


def test_detections_json_is_coco_results_in_original_pixels_with_crops(report):
    results = json.loads(report.detections_json.read_text())
    by_id = {image.image_id: image.size for image in report.images}
    assert {r["image_id"] for r in results} == set(by_id)
    for result in results:
        width, height = by_id[result["image_id"]]
        x, y, w, h = result["bbox"]
        assert 0 <= x and 0 <= y and x + w <= width + 1e-3 and y + h <= height + 1e-3 and w > 0 and h > 0
        assert (result["category_id"], result["category_name"], result["task"]) == (1, "pet", "pet")
        assert result["crops"]["breed"]["class"] in ("a", "b", "c")


def test_masks_and_drawings_have_the_original_size(report):
    for image in report.images:
        with Image.open(image.masks["regions"]) as mask:
            assert mask.size == image.size and mask.mode == "L"
            assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 1}
        with Image.open(image.drawn) as drawn:  # a title band above the image holds the breed
            assert drawn.width == image.size[0] and drawn.height > image.size[1]


def test_cli_runs_end_to_end_on_a_folder(pets, tmp_path, capsys):
    out = tmp_path / "predictions"
    code = main(["predict", str(pets["spec"]), "--checkpoint", str(pets["checkpoint"]), "--out", str(out),
                 "--device", "cpu", "--quiet", str(pets["images"])])
    assert code == 0
    printed = capsys.readouterr().out
    assert "wide.png: breed" in printed and "boxes" in printed
    assert str(out / "detections.json") in printed
    assert {"predictions.json", "detections.json", "tall.png", "tall.regions.png"} <= {p.name for p in out.iterdir()}


def test_cli_runs_chosen_tasks_only(pets, tmp_path, capsys):
    out = tmp_path / "breed-only"
    code = main(["predict", str(pets["spec"]), "--checkpoint", str(pets["checkpoint"]), "--out", str(out),
                 "--tasks", "breed", "--device", "cpu", "--quiet", str(pets["images"] / "wide.png")])
    assert code == 0
    image = json.loads((out / "predictions.json").read_text())["images"][0]
    assert list(image["tasks"]) == ["breed"]
    assert not (out / "detections.json").exists()


def test_missing_image_is_a_clean_error_naming_the_file(pets, tmp_path, capsys):
    missing = tmp_path / "no-such-cat.jpg"
    code = main(["predict", str(pets["spec"]), "--checkpoint", str(pets["checkpoint"]), "--out", str(tmp_path / "o"),
                 str(pets["images"] / "wide.png"), str(missing)])
    assert code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err


def test_unreadable_image_is_a_clean_error(pets, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_text("not a png", encoding="utf-8")
    compilation = pets["compilation"]
    with pytest.raises(ArtefactError, match=r"broken\.png"):
        predict(compilation.spec, compilation.graph, pets["checkpoint"], [broken], tmp_path, progress=False)


def test_checkpoint_of_another_spec_is_refused(pets, tmp_path, capsys):
    other = compile_text(SPEC.replace("[a, b, c]", "[a, b, c, d]"), "other.mtl")
    foreign = save_random_checkpoint(other, tmp_path / "other.pt")
    compilation = pets["compilation"]
    with pytest.raises(TrainingError, match="different model"):
        predict(compilation.spec, compilation.graph, foreign, [pets["images"]], tmp_path / "o", progress=False)
    code = main(["predict", str(pets["spec"]), "--checkpoint", str(foreign), str(pets["images"])])
    assert code == 2 and "different model" in capsys.readouterr().err


def test_missing_checkpoint_and_unknown_task_are_clean_errors(pets, tmp_path):
    compilation = pets["compilation"]
    with pytest.raises(ArtefactError, match="no checkpoint at"):
        predict(compilation.spec, compilation.graph, tmp_path / "nope.pt", [pets["images"]], tmp_path, progress=False)
    with pytest.raises(SpecNameError, match="did you mean 'breed'"):
        predict(compilation.spec, compilation.graph, pets["checkpoint"], [pets["images"]], tmp_path,
                tasks="bred", progress=False)


def test_dense_tasks_need_a_square_input():
    """A spec whose detect/segment tasks would letterbox to a non-square input is refused when it compiles."""
    with pytest.raises(SpecValueError, match="letterboxes images to a square") as raised:
        compile_text(SPEC.replace("input 3x64x64", "input 3x64x96"), "wide.mtl")
    assert "wide.mtl:3:" in raised.value.render()


COCO_SPEC = """
model heads
input 3x64x64
backbone trunk = timm("test_efficientnet")
neck pyramid = fpn(trunk, channels = 16, max_level = 5)
dataset d = coco("{annotations}", images = "{images}")
task pet: detect(d) {{ classes = [dog, cat]; head = efficientdet(max_detections = 4) }}
"""


def test_detections_json_keeps_the_coco_files_image_and_category_ids(tmp_path, capsys):
    from pycocotools.coco import COCO

    images = tmp_path / "images"
    images.mkdir()
    listed = {"a.png": (397133, (80, 50)), "b.png": (9, (30, 90))}
    for name, (_, size) in listed.items():
        Image.new("RGB", size, "gray").save(images / name)
    Image.new("RGB", (40, 40), "gray").save(tmp_path / "elsewhere.png")
    annotations = tmp_path / "instances.json"
    annotations.write_text(json.dumps({
        "images": [{"id": i, "file_name": n, "width": s[0], "height": s[1]} for n, (i, s) in listed.items()],
        "categories": [{"id": 18, "name": "dog"}, {"id": 17, "name": "cat"}, {"id": 1, "name": "person"}],
        "annotations": [{"id": 1, "image_id": 9, "category_id": 17, "bbox": [2, 3, 20, 30], "area": 600, "iscrowd": 0}],
    }))
    spec_path = tmp_path / "heads.mtl"
    spec_path.write_text(COCO_SPEC.format(annotations=annotations, images=images), encoding="utf-8")
    compilation = compile_file(spec_path)
    checkpoint = save_random_checkpoint(compilation, tmp_path / "best.pt")

    def detections(files: list[Path], out: str) -> list[dict]:
        report = predict(compilation.spec, compilation.graph, checkpoint, files, tmp_path / out,
                         device="cpu", progress=False)
        assert report.detections_json is not None
        return json.loads(report.detections_json.read_text())

    found = detections(sorted(images.iterdir()), "listed")
    assert {r["image_id"] for r in found} == {397133, 9}
    assert {(r["category_name"], r["category_id"]) for r in found} <= {("dog", 18), ("cat", 17)} and found
    truth = COCO(str(annotations))
    truth.loadRes(found)  # pycocotools refuses results whose image ids are not the file's

    elsewhere = detections([images / "a.png", tmp_path / "elsewhere.png"], "elsewhere")
    assert {r["image_id"] for r in elsewhere} == {1, 2}  # not every image is the file's: numbered in order
    assert {r["category_id"] for r in elsewhere} <= {18, 17}
