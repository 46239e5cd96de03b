"""The ``keypoints`` task kind end to end, on CPU: its data, its metric, training, ``predict`` and ``export``.

* points stay on their pixels under every augmentation op that may run on them, and swap
  names when an op mirrors the picture;
* a COCO keypoints file is read into targets, and a malformed one is a located error;
* OKS AP is pycocotools' own ``COCOeval`` number on the same file;
* a tiny spec trains, and ``predict`` and an ONNX export find the same points.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from mtdsl.cli import main
from mtdsl.compiler import compile_file
from mtdsl.errors import DataError
from mtdsl.export import FORMATS, export_model
from mtdsl.kinds.keypoints.train import COCO_PERSON_POINTS, KeypointsMetric, oks_evaluate, sigmas_for
from mtdsl.nn.heads.heatmap import decode_heatmaps
from mtdsl.nn.losses import HeatmapFocalLoss, point_heatmaps
from mtdsl.nn.model import MultiTaskModel
from mtdsl.predict import predict
from mtdsl.spec.augment import ColourJitter, Crop, Flip, ScaleJitter, VerticalFlip
from mtdsl.spec.data import CocoDataset, SyntheticDataset
from mtdsl.train.data.datasets import ImageDataset, collate, read_splits
from mtdsl.train.data.letterbox import Letterbox
from mtdsl.train.data.point_targets import SYNTHETIC_POINTS, flip_order
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.run.checkpoint import save_checkpoint
from mtdsl.train.run.fingerprints import model_hash, spec_hash
from mtdsl.train.run.report import MetricsLog

CORNERS = TaskLabels("corners", "keypoints", SYNTHETIC_POINTS)
ZERO_MEAN, UNIT_STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)

#: Every op that may run on images with points, each able to fire (the image-only ops are refused by the spec).
OPS = {
    "flip": Flip(p=0.5),
    "vflip": VerticalFlip(p=0.5),
    "crop": Crop(scale=[0.3, 1.0], ratio=[0.5, 2.0]),
    "scale_jitter": ScaleJitter(min=0.5, max=1.5),
    "colour_jitter": ColourJitter(),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- geometry


def test_flip_order_swaps_mirrored_names_only():
    names = ("nose", "left_eye", "right_eye", "top_left", "bottom_left", "bright_spot")
    assert flip_order(names, horizontal=True, vertical=False).tolist() == [0, 2, 1, 3, 4, 5]
    assert flip_order(names, horizontal=False, vertical=True).tolist() == [0, 1, 2, 4, 3, 5]
    corners = flip_order(SYNTHETIC_POINTS, horizontal=True, vertical=True)
    assert [SYNTHETIC_POINTS[i] for i in corners] == ["bottom_right", "bottom_left", "top_left", "top_right"]


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(24, 400),
    height=st.integers(24, 400),
    fractions=st.tuples(st.floats(0.05, 0.45), st.floats(0.05, 0.45), st.floats(0.55, 0.95), st.floats(0.55, 0.95)),
    ops=st.lists(st.sampled_from(sorted(OPS)), min_size=1, max_size=4, unique=True),
    seed=st.integers(0, 2**31 - 1),
)
def test_points_stay_on_their_pixels_under_every_op(width, height, fractions, ops, seed):
    """A white rectangle's corners, named, go where its box and its pixels go, and keep their names' sides."""
    x0, y0 = round(fractions[0] * width), round(fractions[1] * height)
    x1, y1 = round(fractions[2] * width), round(fractions[3] * height)
    picture = Image.new("RGB", (width, height), "black")
    ImageDraw.Draw(picture).rectangle((x0, y0, x1 - 1, y1 - 1), fill="white")
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)  # SYNTHETIC_POINTS' order
    letterbox = Letterbox(96, ZERO_MEAN, UNIT_STD, train=True, augment=tuple(OPS[op] for op in ops))
    out = letterbox(picture, seed, boxes=np.array([[x0, y0, x1, y1]]), points=corners)
    top_left, top_right, bottom_right, bottom_left = out.points[flip_order(SYNTHETIC_POINTS, *out.flipped)]
    # each name keeps its side: the rectangle is still upright with top_left at its top left
    assert top_left[0] == pytest.approx(bottom_left[0], abs=1e-3)
    assert top_left[1] == pytest.approx(top_right[1], abs=1e-3)
    assert top_left[0] < top_right[0] and top_left[1] < bottom_left[1] and tuple(bottom_right) == pytest.approx(
        (top_right[0], bottom_left[1]), abs=1e-3)
    width_out, height_out = out.picture
    hull = np.array([*top_left, *bottom_right])
    clipped = np.clip(hull, 0, [width_out, height_out, width_out, height_out])
    geometric = [op for op in ops if op in ("crop", "scale_jitter")]
    if out.keep[0]:
        (box,) = out.boxes
        if len(geometric) <= 1:  # one clip, at the end: the box is the corners' rectangle, clipped
            np.testing.assert_allclose(box, clipped, atol=1e-3)
        else:  # a box clipped by a crop stays clipped when a later zoom-out brings its corners back
            assert (box[:2] >= clipped[:2] - 1e-3).all() and (box[2:] <= clipped[2:] + 1e-3).all()
    if not geometric and "colour_jitter" not in ops and min(x1 - x0, y1 - y0) * 96 / max(width, height) >= 4:
        bright = np.argwhere(out.image[0].numpy() > 0.5)  # the pixels: the bright region spans the corners
        found = [bright[:, 1].min(), bright[:, 0].min(), bright[:, 1].max() + 1, bright[:, 0].max() + 1]
        np.testing.assert_allclose(found, hull, atol=1.0)


def test_a_flip_swaps_the_targets_names_and_a_cropped_off_point_gets_no_loss():
    config = SyntheticDataset(count=8, size=64, seed=0, split=[0.5, 0.5])
    examples = read_splits(config, [CORNERS])["train"]
    plain = ImageDataset(examples, [CORNERS], image_size=(64, 64), mean=ZERO_MEAN, std=UNIT_STD, train=False)
    flipped = ImageDataset(examples, [CORNERS], image_size=(64, 64), mean=ZERO_MEAN, std=UNIT_STD, train=True,
                           augment=[Flip(p=1.0)])
    before, after = plain[0]["targets"]["corners"], flipped[(0, 1)]["targets"]["corners"]
    # top_left after the flip is top_right before it, mirrored: x -> 64 - x
    np.testing.assert_allclose(after["points"][0], [64 - before["points"][1][0], before["points"][1][1]], atol=1e-4)
    assert after["labelled"].all() and after["canvas"].tolist() == [64.0, 64.0]
    zoomed = ImageDataset(examples, [CORNERS], image_size=(64, 64), mean=ZERO_MEAN, std=UNIT_STD, train=True,
                          augment=[ScaleJitter(min=4.0, max=4.0)])
    target = zoomed[(0, 0)]["targets"]["corners"]
    outside = (target["points"] < 0).any(1) | (target["points"] > 64).any(1)
    assert outside.any() and not target["labelled"][outside].any()


def test_a_task_that_joins_datasets_labels_the_points_each_one_has():
    config = SyntheticDataset(count=4, size=32, seed=0, split=[0.5, 0.5])
    task = TaskLabels("mixed", "keypoints", ("nose", "top_left"), partial=True)
    target = read_splits(config, [task])["train"].targets["mixed"][0]
    assert target.labelled.tolist() == [False, True] and target.annotated.tolist() == [False, True]
    assert target.truth.keypoints[0, :, 2].tolist() == [0, 2]  # scored on the points it has only
    with pytest.raises(DataError, match="has none of the points of task 'eyes': left_eye, right_eye"):
        read_splits(config, [TaskLabels("eyes", "keypoints", ("left_eye", "right_eye"), partial=True)])


# ---------------------------------------------------------------- loss and decoding


def test_a_gaussian_heatmap_decodes_to_its_point_between_cells():
    points = torch.tensor([[[10.3, 20.7], [33.0, 40.2], [1.0, 63.0]]])
    canvas = torch.tensor([[64.0, 64.0]])
    logits = torch.logit(point_heatmaps(points, canvas, (16, 16), 1.5).clamp(1e-6, 1 - 1e-6))
    found, scores = decode_heatmaps(logits, (64, 64))
    np.testing.assert_allclose(found[0, :2], points[0, :2], atol=1e-3)
    assert (found[0, 2] - points[0, 2]).abs().max() <= 2.0  # a peak on the border: no neighbour to refine with
    assert scores.shape == (1, 3) and (scores > 0.5).all()


def test_the_loss_is_least_at_the_target_and_an_unlabelled_point_gets_no_gradient():
    points = torch.tensor([[[20.0, 30.0], [40.0, 12.0]]])
    targets = {"points": points, "labelled": torch.tensor([[True, False]]), "canvas": torch.tensor([[64.0, 64.0]])}
    loss = HeatmapFocalLoss(sigma=2.0)
    perfect = torch.logit(point_heatmaps(points, targets["canvas"], (16, 16), 2.0).clamp(1e-6, 1 - 1e-6))
    logits = torch.zeros(1, 2, 16, 16, requires_grad=True)
    value = loss(logits, targets)
    value.backward()
    assert float(loss(perfect, targets)) < 1e-6 < value.item()
    assert logits.grad[0, 0].abs().sum() > 0 and logits.grad[0, 1].abs().sum() == 0


# ---------------------------------------------------------------- COCO keypoints


def _coco_keypoints(folder: Path, annotations: list[dict], names=("nose", "left_eye", "right_eye")) -> Path:
    images = []
    for image_id, size in ((1, (40, 30)), (2, (50, 50))):
        Image.new("RGB", size).save(folder / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": size[0], "height": size[1]})
    path = folder / "person_keypoints.json"
    path.write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": list(names), "skeleton": [[1, 2], [1, 3]]}],
    }))
    return path


def _person(ann_id, image_id, keypoints, area=100.0, bbox=(5, 5, 20, 20)):
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": list(bbox), "area": area,
            "iscrowd": 0, "keypoints": keypoints, "num_keypoints": sum(v > 0 for v in keypoints[2::3])}


def test_a_coco_keypoints_file_gives_each_image_its_best_labelled_instance(tmp_path):
    path = _coco_keypoints(tmp_path, [
        _person(1, 1, [10, 10, 2, 0, 0, 0, 14, 9, 1]),
        _person(2, 1, [20, 20, 2, 18, 18, 2, 22, 18, 2], area=50.0),  # more points labelled: this one is learnt
        _person(3, 2, [0, 0, 0, 0, 0, 0, 0, 0, 0]),
    ])
    config = CocoDataset(annotations=str(path), images=str(tmp_path), split=[0.5, 0.5])
    task = TaskLabels("face", "keypoints", ("nose", "left_eye", "right_eye"))
    table = {name: split for name, split in read_splits(config, [task]).items()}
    targets = {int(t.truth.image_id): t for split in table.values() for t in split.targets["face"]}
    assert targets[1].points.tolist() == [[20, 20], [18, 18], [22, 18]] and targets[1].labelled.all()
    assert targets[1].truth.keypoints.shape == (2, 3, 3)  # both instances are scored
    assert not targets[2].labelled.any()  # nothing labelled: no loss on it


@pytest.mark.parametrize(("keypoints", "says"), [
    ([10, 10, 2, 0, 0], "annotation 7 (image 1) has keypoints of 5 numbers, not x, y, v for each of its "
                        "category's 3 points (9 numbers)"),
    ([10, 10, 3, 0, 0, 0, 0, 0, 0], "annotation 7 (image 1) has keypoints whose visibility v is 3"),
    ([10, "x", 2, 0, 0, 0, 0, 0, 0], "annotation 7 (image 1) has keypoints [10, 'x', 2"),
])
def test_malformed_keypoints_are_a_located_error(tmp_path, keypoints, says):
    path = _coco_keypoints(tmp_path, [_person(7, 1, keypoints)])
    config = CocoDataset(annotations=str(path), images=str(tmp_path))
    with pytest.raises(DataError) as error:
        read_splits(config, [TaskLabels("face", "keypoints", 3)])
    assert says in error.value.message and str(path) in error.value.message
    assert "v 0 (not labelled), 1 (labelled, hidden) or 2 (visible)" in error.value.expected


def test_a_file_without_keypoints_and_points_it_does_not_name_are_errors(tmp_path):
    path = _coco_keypoints(tmp_path, [_person(1, 1, [10, 10, 2, 0, 0, 0, 0, 0, 0])])
    config = CocoDataset(annotations=str(path), images=str(tmp_path))
    with pytest.raises(DataError, match="has classes = \\[nose, left_ear\\], but the dataset's 3 classes are nose"):
        read_splits(config, [TaskLabels("face", "keypoints", ("nose", "left_ear"))])
    data = json.loads(path.read_text())
    del data["categories"][0]["keypoints"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="no category names keypoints, which keypoints task 'face' learns"):
        read_splits(config, [TaskLabels("face", "keypoints", 3)])


# ---------------------------------------------------------------- OKS AP


def test_oks_ap_is_pycocotools_own_number_on_the_same_files(tmp_path):
    """17 COCO person points: pycocotools' default sigmas are COCO's, so plain COCOeval must agree."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    truth, found, annotations, results, images = [], [], [], [], []
    for image_id in range(1, 7):
        instances = rng.uniform(10, 90, (2, 17, 3))
        instances[..., 2] = rng.choice([0, 1, 2], (2, 17), p=[0.2, 0.3, 0.5])
        instances[instances[..., 2] == 0, :2] = 0
        boxes = np.array([[5, 5, 95, 95], [10, 20, 60, 90]], dtype=np.float64)
        areas = np.array([3000.0, 1500.0])
        truth.append({"keypoints": instances, "areas": areas, "boxes": boxes, "image_id": image_id,
                      "image_size": (100, 100)})
        guess = instances[0, :, :2] + rng.normal(0, 3, (17, 2))
        scores = rng.uniform(0.2, 1.0, 17)
        found.append({"points": guess, "scores": scores})
        images.append({"id": image_id, "width": 100, "height": 100})
        for g in range(2):
            x0, y0, x1, y1 = boxes[g]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                                "keypoints": instances[g].reshape(-1).tolist(), "area": areas[g],
                                "num_keypoints": int((instances[g, :, 2] > 0).sum()),
                                "bbox": [x0, y0, x1 - x0, y1 - y0]})
        flat = np.concatenate([guess, np.ones((17, 1))], axis=1).reshape(-1).tolist()
        results.append({"image_id": image_id, "category_id": 1, "keypoints": flat, "score": float(scores.mean())})
    (tmp_path / "truth.json").write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_PERSON_POINTS), "skeleton": []}]}))
    coco = COCO(str(tmp_path / "truth.json"))
    evaluator = COCOeval(coco, coco.loadRes(results), "keypoints")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    ours = oks_evaluate(truth, found, COCO_PERSON_POINTS)
    assert 0.0 < ours["AP"] < 1.0
    np.testing.assert_allclose([ours[k] for k in ("AP", "AP50", "AP75", "AR")], evaluator.stats[[0, 1, 2, 5]],
                               atol=1e-9)
    assert sigmas_for(("nose", "corner")).tolist() == pytest.approx([0.026, 0.05])


def test_the_metric_scores_perfect_heatmaps_near_one_and_flat_ones_zero():
    config = SyntheticDataset(count=24, size=64, seed=0, split=[0.5, 0.5])
    dataset = ImageDataset(read_splits(config, [CORNERS])["val"], [CORNERS], image_size=(64, 64), mean=ZERO_MEAN,
                           std=UNIT_STD, train=False)
    targets = collate([dataset[i] for i in range(len(dataset))])["targets"]["corners"]
    perfect = torch.logit(point_heatmaps(targets["points"], targets["canvas"], (16, 16), 1.0).clamp(1e-6, 1 - 1e-6))
    metric = KeypointsMetric(4, SYNTHETIC_POINTS)
    metric.update(perfect, targets)
    assert metric.compute()["AP"] > 0.9
    metric.reset()
    metric.update(torch.zeros_like(perfect), targets)  # every point at the first cell
    assert metric.compute()["AP"] == 0.0


# ---------------------------------------------------------------- training, predict and export

SPEC = """
model corners
input 3x64x64
backbone trunk = timm("test_resnet")
neck pyramid = fpn(trunk, channels = 16, max_level = 5)
dataset shapes = synthetic(count = 48, size = 64, seed = 0)
task corners: keypoints(shapes) { classes = [top_left, top_right, bottom_right, bottom_left] }
train { batch_size = 16; epochs = 2; optimizer = adamw(lr = 0.003); workers = 0 }
"""


@pytest.fixture(scope="module")
def corners(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corners")
    spec = folder / "corners.mtl"
    spec.write_text(SPEC, encoding="utf-8")
    compilation = compile_file(spec)
    torch.manual_seed(0)
    model = MultiTaskModel(compilation.graph, load_pretrained=False).eval()
    checkpoint = save_checkpoint({"model": model.state_dict(), "model_hash": model_hash(compilation.graph),
                                  "spec_hash": spec_hash(compilation.spec), "spec_name": compilation.spec.name},
                                 folder / "best.pt")
    images = folder / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name, size in {"wide": (80, 50), "tall": (30, 90)}.items():
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(images / f"{name}.png")
    return {"spec": spec, "compilation": compilation, "model": model, "checkpoint": checkpoint, "images": images}


def test_a_tiny_spec_trains_and_reports_oks_ap(corners, tmp_path):
    run = tmp_path / "run"
    assert main(["train", str(corners["spec"]), "--out", str(run), "--quiet"]) == 0
    log = MetricsLog.read(run / "metrics.jsonl")
    trains = [r for r in log if r["event"] == "train"]
    assert len(trains) == 2 and trains[1]["losses"]["corners"] < trains[0]["losses"]["corners"]
    results = json.loads((run / "test.json").read_text())
    assert {"AP", "AP50", "AP75", "AR"} <= set(json.dumps(results).replace('"', " ").split())
    assert (run / "predictions" / "shapes.png").is_file()


def test_predict_writes_and_draws_each_named_point_in_the_images_pixels(corners, tmp_path):
    compilation = corners["compilation"]
    files = sorted(corners["images"].iterdir())
    report = predict(compilation.spec, compilation.graph, corners["checkpoint"], files, tmp_path, device="cpu",
                     batch_size=2, progress=False)
    written = json.loads((tmp_path / "predictions.json").read_text())
    for entry, file in zip(written["images"], files):
        output = entry["tasks"]["corners"]
        assert output["kind"] == "keypoints" and [p["name"] for p in output["points"]] == list(SYNTHETIC_POINTS)
        width, height = Image.open(file).size
        # the letterbox's square covers more than the image: a point may lie in its padding, never beyond it
        side = max(width, height)
        assert all(0 <= p["x"] <= side and 0 <= p["y"] <= side and 0 <= p["score"] <= 1 for p in output["points"])
        assert Image.open(tmp_path / f"{file.stem}.png").size[0] == width
    assert report.tasks == ["corners"]
    # the same points as decoding the model's heatmaps by hand, mapped back through the letterbox
    image = Image.open(files[0]).convert("RGB")
    from mtdsl.predict.predictor import Predictor

    predictor = Predictor(compilation.spec, compilation.graph, corners["model"], ["corners"], torch.device("cpu"), 1)
    boxed = predictor.letterbox(image, 0)
    with torch.no_grad():
        heatmaps = corners["model"](boxed.image[None], tasks=["corners"])["corners"]
    points, _ = decode_heatmaps(heatmaps, (64, 64))
    expected = points[0].numpy() / np.array(boxed.scale)
    got = [[p["x"], p["y"]] for p in written["images"][0]["tasks"]["corners"]["points"]]
    np.testing.assert_allclose(got, expected, atol=0.01)


def test_drawn_points_change_the_picture(corners, tmp_path):
    from mtdsl.render.predictions import draw_predictions

    blank = Image.new("RGB", (64, 64))
    drawn = np.asarray(draw_predictions(blank, points=np.array([[10.0, 10.0], [50.0, 40.0]]),
                                        point_labels=["a", "b"]))
    assert drawn[10, 10].any() and drawn[40, 50].any() and not drawn[30, 30].any()


@pytest.mark.parametrize("postprocess", [False, True])
def test_onnx_export_returns_the_points_predict_finds(corners, tmp_path, postprocess):
    onnxruntime = pytest.importorskip("onnxruntime")
    export_model(corners["compilation"], corners["checkpoint"], tmp_path, format="onnx", postprocess=postprocess)
    session = onnxruntime.InferenceSession(str(tmp_path / FORMATS["onnx"]))
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    names = [output.name for output in session.get_outputs()]
    got = dict(zip(names, session.run(None, {"image": images.numpy()})))
    with torch.no_grad():
        heatmaps = corners["model"](images, tasks=["corners"])["corners"]
    if not postprocess:
        assert names == ["corners"]
        np.testing.assert_allclose(got["corners"], heatmaps.numpy(), rtol=1e-4, atol=1e-4)
        return
    assert names == ["corners.points", "corners.scores"]
    points, scores = decode_heatmaps(heatmaps, (64, 64))
    # the refinement divides by a random model's flat curvature, which magnifies float differences
    np.testing.assert_allclose(got["corners.points"], points.numpy(), atol=0.02)
    np.testing.assert_allclose(got["corners.scores"], scores.numpy(), atol=1e-5)
