"""``mtdsl export``: ONNX, torch.export and TorchScript files whose named outputs match the PyTorch model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import ROOT, tiny_backbones

from mtdsl.cli import main
from mtdsl.codegen.train_source import detection_setups
from mtdsl.compiler import compile_spec
from mtdsl.export import FORMATS, SIDECAR, export_model
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


def _expected(compilation, model, images, postprocess, tasks=None):
    kinds = {task: compilation.spec.model.tasks[task].kind for task in tasks or compilation.spec.model.tasks}
    reference = NamedOutputs(model, kinds, postprocess, detection_setups(compilation.spec, compilation.graph)).eval()
    with torch.no_grad():
        return [output.numpy() for output in reference(images)]


@pytest.mark.parametrize("postprocess", [False, True])
def test_onnx_outputs_match_pytorch_for_every_task_at_any_batch_size(trained, tmp_path, postprocess):
    onnxruntime = pytest.importorskip("onnxruntime")
    compilation, model, checkpoint = trained
    written = export_model(compilation, checkpoint, tmp_path, format="onnx", postprocess=postprocess)
    sidecar = json.loads((tmp_path / SIDECAR).read_text())
    session = onnxruntime.InferenceSession(str(tmp_path / FORMATS["onnx"]))
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
        anchors = np.load(tmp_path / detect["anchors"]["file"])
        assert anchors.shape == (detect["anchors"]["count"], 4) and tmp_path / "objects.anchors.npy" in written


@pytest.mark.parametrize("format", ["torch.export", "torchscript"])
def test_torch_programs_load_and_match_pytorch(trained, tmp_path, format):
    compilation, model, checkpoint = trained
    export_model(compilation, checkpoint, tmp_path, format=format, tasks=["regions", "shape"])
    path = str(tmp_path / FORMATS[format])
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
