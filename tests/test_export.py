"""``mtdsl export``: ONNX, torch.export and TorchScript files whose named outputs match the PyTorch model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import ROOT, tiny_backbones

from mtdsl.cli import main
from mtdsl.codegen.train_source import detection_setups
from mtdsl.compiler import compile_spec
from mtdsl.errors import ExportError
from mtdsl.export import FORMATS, SIDECAR, WEIGHTS_NAME, _write_program, export_model
from mtdsl.export.nms import Detections
from mtdsl.export.outputs import NamedOutputs
from mtdsl.nn.model import MultiTaskModel
from mtdsl.spec.load import load_spec
from mtdsl.train.run.checkpoint import save_checkpoint
from mtdsl.train.run.fingerprints import model_hash, spec_hash

QUICKSTART = ROOT / "specs" / "quickstart.mtl"  # classify, binary, detect and segment tasks on one backbone


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The quickstart on tiny backbones, and a checkpoint of random weights for it."""
    compilation = compile_spec(tiny_backbones(load_spec(QUICKSTART)))
    torch.manual_seed(0)
    model = MultiTaskModel(compilation.graph, load_pretrained=False).eval()
    checkpoint = save_checkpoint({"model": model.state_dict(), "model_hash": model_hash(compilation.graph),
                                  "spec_hash": spec_hash(compilation.spec), "spec_name": compilation.spec.name},
                                 tmp_path_factory.mktemp("run") / "best.pt")
    return compilation, model, checkpoint


def _moved(folder, elsewhere):
    """Only the files ``folder``'s sidecar lists, copied to ``elsewhere``; ``folder`` itself deleted."""
    sidecar = json.loads((folder / SIDECAR).read_text())
    assert sorted(path.name for path in folder.iterdir()) == sorted(sidecar["files"])  # nothing hidden, or unlisted
    elsewhere.mkdir()
    for name in sidecar["files"]:
        shutil.copy2(folder / name, elsewhere / name)
    shutil.rmtree(folder)
    return elsewhere, sidecar


def _expected(compilation, model, images, postprocess, tasks=None):
    kinds = {task: compilation.spec.model.tasks[task].kind for task in tasks or compilation.spec.model.tasks}
    reference = NamedOutputs(model, kinds, postprocess, detection_setups(compilation.spec, compilation.graph)).eval()
    with torch.no_grad():
        return [output.numpy() for output in reference(images)]


@pytest.mark.parametrize("postprocess", [False, True])
def test_onnx_outputs_match_pytorch_for_every_task_at_any_batch_size(trained, tmp_path, postprocess):
    onnxruntime = pytest.importorskip("onnxruntime")
    compilation, model, checkpoint = trained
    written = export_model(compilation, checkpoint, tmp_path / "export", format="onnx", postprocess=postprocess)
    assert [path.name for path in written] == json.loads((tmp_path / "export" / SIDECAR).read_text())["files"]
    here, sidecar = _moved(tmp_path / "export", tmp_path / "elsewhere")  # the export stands alone
    assert sidecar["external_data"] is None and "model.onnx.data" not in sidecar["files"]  # small: one file
    session = onnxruntime.InferenceSession(str(here / FORMATS["onnx"]))
    names = [output.name for output in session.get_outputs()]
    assert names == [o["name"] for task in sidecar["tasks"].values() for o in task["outputs"]]
    assert list(sidecar["tasks"]) == list(compilation.spec.model.tasks)
    images = torch.randn(3, 3, *sidecar["input"]["shape"][2:])  # exported at batch 1: the batch is dynamic
    actual = session.run(None, {"image": images.numpy()})
    for name, got, want in zip(names, actual, _expected(compilation, model, images, postprocess), strict=True):
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=name)
    shapes = {o["name"]: o["shape"] for task in sidecar["tasks"].values() for o in task["outputs"]}
    assert all(list(got.shape[1:]) == shapes[name][1:] for name, got in zip(names, actual))
    detect = sidecar["tasks"]["objects"]
    assert detect["classes"] == ["circle", "square", "triangle"] and detect["nms"]["iou"] == 0.5
    if postprocess:
        assert detect["anchors"]["file"] is None
        probabilities = dict(zip(names, actual))["shape"]
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    else:
        anchors = np.load(here / detect["anchors"]["file"])
        assert anchors.shape == (detect["anchors"]["count"], 4) and "objects.anchors.npy" in sidecar["files"]


def test_onnx_weights_past_the_limit_go_to_a_listed_data_file_and_the_export_runs_elsewhere(trained, tmp_path,
                                                                                             monkeypatch):
    """Past :data:`EXTERNAL_DATA_BYTES` (here 0) the weights leave ``model.onnx`` for ``model.onnx.data``:
    visible, listed in the sidecar, and found again by onnxruntime after the export is copied away."""
    onnxruntime = pytest.importorskip("onnxruntime")
    compilation, model, checkpoint = trained
    monkeypatch.setattr("mtdsl.export.EXTERNAL_DATA_BYTES", 0)
    export_model(compilation, checkpoint, tmp_path / "export", format="onnx", tasks=["shape", "regions"])
    here, sidecar = _moved(tmp_path / "export", tmp_path / "elsewhere")
    assert sidecar["external_data"] == "model.onnx.data" and sidecar["files"] == [
        "model.onnx", "model.onnx.data", WEIGHTS_NAME, SIDECAR]
    assert (here / "model.onnx").stat().st_size < (here / "model.onnx.data").stat().st_size / 4
    images = torch.randn(2, 3, 64, 64)
    actual = onnxruntime.InferenceSession(str(here / "model.onnx")).run(None, {"image": images.numpy()})
    for got, want in zip(actual, _expected(compilation, model, images, False, ["shape", "regions"]), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    monkeypatch.undo()  # and a smaller export into the same folder leaves no stale data file behind
    export_model(compilation, checkpoint, here, format="onnx", tasks=["shape"], overwrite=True)
    assert not (here / "model.onnx.data").exists()
    assert json.loads((here / SIDECAR).read_text())["external_data"] is None


@pytest.mark.parametrize("format", ["torch.export", "torchscript"])
def test_torch_programs_load_and_match_pytorch(trained, tmp_path, format):
    compilation, model, checkpoint = trained
    export_model(compilation, checkpoint, tmp_path / "export", format=format, tasks=["regions", "shape"])
    here, sidecar = _moved(tmp_path / "export", tmp_path / "elsewhere")
    assert sidecar["files"] == [FORMATS[format], WEIGHTS_NAME, SIDECAR] and sidecar["weights"] == WEIGHTS_NAME
    from safetensors.torch import load_file

    weights = load_file(str(here / WEIGHTS_NAME))  # the whole model's weights, every task's, as model.py loads them
    assert weights.keys() == model.state_dict().keys()
    assert all(torch.equal(weights[name], tensor) for name, tensor in model.state_dict().items())
    path = str(here / FORMATS[format])
    program = torch.export.load(path).module() if format == "torch.export" else torch.jit.load(path)
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        actual = program(images)
    expected = _expected(compilation, model, images, False, ["regions", "shape"])
    assert len(actual) == len(expected) == 2
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)


def test_export_command_refuses_a_used_folder_and_unknown_tasks(trained, tmp_path, capsys):
    _, _, checkpoint = trained
    spec = tmp_path / "quickstart.mtl"
    spec.write_text(QUICKSTART.read_text().replace('"resnet10t"', '"test_resnet"'))
    out = tmp_path / "export"
    command = ["export", str(spec), "--checkpoint", str(checkpoint), "--out", str(out), "--format", "torchscript"]
    assert main([*command, "--tasks", "shape,nope"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert main([*command, "--tasks", "shape"]) == 0
    stamp = (out / FORMATS["torchscript"]).stat().st_mtime_ns
    assert main([*command, "--tasks", "shape"]) == 2
    assert "already holds an export" in capsys.readouterr().err
    assert (out / FORMATS["torchscript"]).stat().st_mtime_ns == stamp
    assert main([*command, "--tasks", "shape", "--overwrite"]) == 0
    stamp = (out / FORMATS["torchscript"]).stat().st_mtime_ns
    assert main([*command[:3], str(tmp_path / "none.pt"), *command[4:], "--overwrite"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert (out / FORMATS["torchscript"]).stat().st_mtime_ns == stamp  # a failed export leaves the old one


def _checkpoint(compilation, state, path):
    return save_checkpoint({"model": state, "model_hash": model_hash(compilation.graph),
                            "spec_hash": spec_hash(compilation.spec), "spec_name": compilation.spec.name}, path)


def test_non_finite_weights_are_refused_naming_them_and_nothing_is_written(trained, tmp_path, capsys):
    compilation, model, _ = trained
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    names = [name for name, tensor in state.items() if tensor.is_floating_point()]
    state[names[3]][0] = float("nan")
    state[names[7]].fill_(float("inf"))
    spec = tmp_path / "quickstart.mtl"
    spec.write_text(QUICKSTART.read_text().replace('"resnet10t"', '"test_resnet"'))
    out = tmp_path / "export"
    assert main(["export", str(spec), "--checkpoint", str(_checkpoint(compilation, state, tmp_path / "diverged.pt")),
                 "--out", str(out), "--format", "torchscript"]) == 2
    err = capsys.readouterr().err
    message = next(line for line in err.splitlines() if "export error" in line)
    assert f"non-finite weights (NaN or infinity) in 2 of {len(state)} tensors: {names[3]}, {names[7]}" in message
    assert "hint: the run diverged" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
    # every weight NaN (integer buffers stay as they are): the message names five and counts the rest
    nan = {name: torch.full_like(tensor, float("nan")) if tensor.is_floating_point() else tensor
           for name, tensor in state.items()}
    with pytest.raises(ExportError) as error:
        export_model(compilation, _checkpoint(compilation, nan, tmp_path / "nan.pt"), out, format="onnx")
    assert f" in {len(names)} of {len(state)} tensors: {', '.join(names[:5])} and {len(names) - 5} more" in str(
        error.value).splitlines()[0]
    assert not out.exists() or not any(out.iterdir())


def test_an_exporter_failure_is_a_message_and_writes_nothing(trained, tmp_path, monkeypatch, capsys):
    _, _, checkpoint = trained
    spec = tmp_path / "quickstart.mtl"
    spec.write_text(QUICKSTART.read_text().replace('"resnet10t"', '"test_resnet"'))

    def failing_trace(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::something\nmore detail")

    monkeypatch.setattr(torch.jit, "trace", failing_trace)
    out = tmp_path / "export"
    assert main(["export", str(spec), "--checkpoint", str(checkpoint), "--out", str(out), "--format", "torchscript",
                 "--tasks", "shape"]) == 2
    err = capsys.readouterr().err
    assert "torchscript export of this model failed: unsupported operator aten::something" in err
    assert "Traceback" not in err and not any(out.glob("*"))


def _reference_detections(compilation, model, images):
    setups = detection_setups(compilation.spec, compilation.graph)
    with torch.no_grad():
        outputs = model(images, tasks=list(setups))
    return {task: setup.detections(outputs[task]) for task, setup in setups.items()}


def _canonical(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray):
    """Best first, and boxes of equal score in one fixed order (both sides may order ties differently)."""
    order = np.lexsort((*np.round(boxes, 2).T[::-1], classes, -np.round(scores, 5)))
    return boxes[order], scores[order], classes[order]


def _assert_same_detections(named: dict[str, np.ndarray], reference: dict, most: int) -> None:
    for task, per_image in reference.items():
        count = named[f"{task}.count"]
        assert named[f"{task}.boxes"].shape == (len(per_image), most, 4)
        for n, found in enumerate(per_image):
            real = int(count[n])
            assert real == len(found["scores"]), (task, n)
            got = _canonical(named[f"{task}.boxes"][n, :real], named[f"{task}.scores"][n, :real],
                             named[f"{task}.classes"][n, :real])
            want = _canonical(found["boxes"].numpy(), found["scores"].numpy(), found["classes"].numpy())
            assert (np.diff(named[f"{task}.scores"][n, :real]) <= 1e-6).all()  # best first
            np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-3)
            np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(got[2], want[2])
            assert (named[f"{task}.classes"][n, real:] == -1).all() and (named[f"{task}.scores"][n, real:] == 0).all()


class _PackedHead(torch.nn.Module):
    """A detector's raw outputs packed in one input ``(N, A, C + 4)``, so the exporter's one-input path takes it."""

    def __init__(self, setup, classes: int) -> None:
        super().__init__()
        self.detections = Detections(setup)
        self.classes = classes

    def forward(self, image: torch.Tensor):  # the exporter's input name
        return self.detections(image[..., : self.classes], image[..., self.classes :])


@pytest.mark.parametrize("format", ["onnx", "torch.export", "torchscript"])
def test_nms_inside_an_export_keeps_the_boxes_evaluation_keeps(trained, tmp_path, format):
    """Head outputs with well-spread scores (hundreds of candidates, many overlapping) through the exported
    decode + NMS, against :meth:`DetectionSetup.detections` image by image."""
    compilation, _, _ = trained
    setup = detection_setups(compilation.spec, compilation.graph)["objects"]
    anchors, classes = len(setup.anchor_boxes()), 3
    head = _PackedHead(setup, classes).eval()
    generator = torch.Generator().manual_seed(0)
    packed = torch.cat([torch.randn(4, anchors, classes, generator=generator) * 2 - 2.5,
                        torch.randn(4, anchors, 4, generator=generator) * 0.3], dim=-1)
    names = ["boxes", "scores", "classes", "count"]
    path, = _write_program(head, packed[:1], names, tmp_path / FORMATS[format], format)
    batch = packed if format == "onnx" else packed[:1]  # ONNX: exported at batch 1, run at 4
    if format == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
        actual = onnxruntime.InferenceSession(str(path)).run(None, {"image": batch.numpy()})
    else:
        program = torch.export.load(str(path)).module() if format == "torch.export" else torch.jit.load(str(path))
        with torch.no_grad():
            actual = [output.numpy() for output in program(batch)]
    reference = setup.detections((batch[..., :classes], batch[..., classes:]))
    assert all(len(found["scores"]) == setup.max_detections for found in reference)  # NMS and the cap both bit
    _assert_same_detections({f"objects.{name}": value for name, value in zip(names, actual)},
                            {"objects": reference}, setup.max_detections)


@pytest.mark.parametrize("format", ["onnx", "torch.export", "torchscript"])
def test_a_model_exported_with_nms_gives_every_task_as_pytorch_does(trained, tmp_path, format):
    """With ``--nms`` every task's outputs are there, named as the sidecar says, and match PyTorch's."""
    compilation, model, checkpoint = trained
    export_model(compilation, checkpoint, tmp_path, format=format, nms=True)
    sidecar = json.loads((tmp_path / SIDECAR).read_text())
    detect = sidecar["tasks"]["objects"]
    assert sidecar["nms_inside"] and detect["nms"]["inside_model"]
    names = [o["name"] for task in sidecar["tasks"].values() for o in task["outputs"]]
    assert [name for name in names if name.startswith("objects.")] == [
        "objects.boxes", "objects.scores", "objects.classes", "objects.count"]
    torch.manual_seed(1)
    images = torch.randn(3 if format == "onnx" else 1, 3, *sidecar["input"]["shape"][2:])
    if format == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
        session = onnxruntime.InferenceSession(str(tmp_path / FORMATS["onnx"]))
        assert [output.name for output in session.get_outputs()] == names
        actual = session.run(None, {"image": images.numpy()})
    else:
        import mtdsl.export.nms  # noqa: F401  registers mtdsl::nms_keep, which the program calls

        path = str(tmp_path / FORMATS[format])
        program = torch.export.load(path).module() if format == "torch.export" else torch.jit.load(path)
        with torch.no_grad():
            actual = [output.numpy() for output in program(images)]
    named = dict(zip(names, actual, strict=True))
    _assert_same_detections(named, _reference_detections(compilation, model, images), detect["nms"]["max_detections"])
    for task in ("shape", "colour", "large", "regions"):  # the other tasks, post-processed
        want = _expected(compilation, model, images, True, tasks=[task])[0]
        np.testing.assert_allclose(named[task], want, rtol=1e-4, atol=1e-5, err_msg=task)


LABEL_KINDS_SPEC = """model labels
input 3x32x32
backbone trunk = timm("test_resnet")
dataset shapes = synthetic(count = 8, size = 32)
task shape: classify(shapes) { classes = [circle, square, triangle] }
task large: binary(shapes)
task colours: multilabel(shapes) { classes = [red, green, blue] }
"""


def test_exported_probabilities_are_the_scores_mtdsl_predict_reports_for_every_image_label_kind():
    from mtdsl.compiler import compile_text
    from mtdsl.render.label_results import LABEL_OUTPUTS

    compilation = compile_text(LABEL_KINDS_SPEC)
    torch.manual_seed(0)
    model = MultiTaskModel(compilation.graph, load_pretrained=False).eval()
    tasks = compilation.spec.model.tasks
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        raw = model(images)
        exported = dict(zip(tasks, NamedOutputs(model, {t: task.kind for t, task in tasks.items()}, True, {})(images),
                            strict=True))
    for index in range(len(images)):
        for name, task in tasks.items():
            classes = list(task.classes) if task.classes else None
            words = LABEL_OUTPUTS[task.kind](classes, raw[name][index], 3)
            scores = {"classify": lambda w: {w["class"]: w["score"]}, "binary": lambda w: {"yes": w["score"]},
                      "multilabel": lambda w: w["scores"]}[task.kind](words)
            got = exported[name][index]
            for position, (label, score) in enumerate(scores.items()):
                where = classes.index(label) if task.kind == "classify" else position
                assert float(got[where]) == pytest.approx(score, abs=1e-5), (name, label)
