"""``mtdsl export``: a trained model as a deployable file with one named output per task, and a sidecar.

Formats:

* ``onnx``: ``model.onnx`` through ``torch.onnx.export(dynamo=True)`` (needs the
  ``export`` extra: onnx, onnxscript; onnxruntime to run it), the batch
  dimension dynamic, the weights inside the file unless they pass
  :data:`EXTERNAL_DATA_BYTES` (protobuf caps a file at 2 GB); then they go to
  ``model.onnx.data`` beside it, which ``model.json`` lists;
* ``torch.export``: ``model.pt2``, an ``ExportedProgram`` (``torch.export.load``);
* ``torchscript``: ``model.torchscript.pt``, traced (``torch.jit.load``).

Each writes ``model.json`` beside it, generated from the spec: the input
(size, normalisation), and per task its kind, class names, outputs (name,
shape, meaning) and, for detection, the anchors, matching and NMS settings;
with raw detection outputs also ``<task>.anchors.npy``; and ``model.safetensors``,
the model's weights alone (:mod:`mtdsl.train.run.weights`). ``model.json``'s
``files`` lists every file the export needs, so copying those is copying the
export. Weights with a NaN or an infinity are refused, naming the tensors. A
folder that already holds an export is refused unless ``overwrite`` is set.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from mtdsl import __version__
from mtdsl.codegen.train_source import detection_setups
from mtdsl.compiler import Compilation
from mtdsl.detection.boxes import PRE_NMS_TOP_K
from mtdsl.errors import ArtefactError, ExportError
from mtdsl.export.nms import nms_keep_onnx
from mtdsl.export.outputs import NamedOutputs, Output, task_outputs
from mtdsl.files import write_atomic
from mtdsl.nn.model import resolve_tasks
from mtdsl.predict.loading import load_model
from mtdsl.train.data.resize import normalization
from mtdsl.train.data.tasks import task_labels
from mtdsl.train.loop.runtime import class_names
from mtdsl.train.run.fingerprints import model_hash
from mtdsl.train.run.weights import WEIGHTS_NAME, non_finite, save_weights

FORMATS = {"onnx": "model.onnx", "torch.export": "model.pt2", "torchscript": "model.torchscript.pt"}
SIDECAR = "model.json"
#: ONNX weights past this many bytes go to ``model.onnx.data``: protobuf caps one file at 2 GB, and the graph
#: needs room beside the weights (torch.onnx switches at the same size on its own).
EXTERNAL_DATA_BYTES = 1536 * 2**20

__all__ = ["EXTERNAL_DATA_BYTES", "FORMATS", "SIDECAR", "WEIGHTS_NAME", "ExportError", "export_model"]


def export_model(compilation: Compilation, checkpoint: str | Path, out: str | Path, *, format: str = "onnx",
                 tasks: list[str] | None = None, postprocess: bool = False, overwrite: bool = False,
                 batch_size: int = 1, nms: bool = False) -> list[Path]:
    """Export ``compilation``'s model with ``checkpoint``'s weights into ``out``; returns the files written.

    ``postprocess`` turns logits into probabilities and decodes boxes; ``nms`` (implying it) also runs
    class-wise NMS inside the model, so a detect task returns its best boxes (:mod:`mtdsl.export.nms`).

    Raises:
        ArtefactError: ``out`` already holds an export (and not ``overwrite``), or no checkpoint file.
        TrainingError: the checkpoint was trained for another model.
        ExportError: the checkpoint's weights are not all finite, or the format's exporter is not installed
            or fails on this model.
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format '{format}'", hint=f"use one of: {', '.join(FORMATS)}")
    spec, graph = compilation.spec, compilation.graph
    try:
        chosen = resolve_tasks(tasks, list(spec.model.tasks))
    except KeyError as error:
        raise ExportError(str(error.args[0]), hint="--tasks takes task names joined by commas") from None
    out = Path(out)
    _refuse_used(out, overwrite)
    model = load_model(spec, graph, checkpoint, torch.device("cpu"))
    _refuse_non_finite(model.state_dict(), checkpoint)
    kinds = {task: spec.model.tasks[task].kind for task in chosen}
    setups = {task: setup for task, setup in detection_setups(spec, graph).items() if task in kinds}
    postprocess = postprocess or nms
    height, width = spec.model.input.height, spec.model.input.width
    wrapped = NamedOutputs(model, kinds, postprocess, setups, nms=nms, image_size=(height, width)).eval()
    outputs = task_outputs(kinds, {t: spec.model.tasks[t].num_outputs for t in chosen}, (height, width), postprocess,
                           {task: len(setup.anchor_boxes()) for task, setup in setups.items()},
                           {task: setup.max_detections for task, setup in setups.items()} if nms else None)
    example = torch.zeros(batch_size, spec.model.input.channels, height, width)
    out.mkdir(parents=True, exist_ok=True)
    written = _write_program(wrapped, example, [o.name for o in outputs], out / FORMATS[format], format)
    written.append(save_weights(model.state_dict(), out / WEIGHTS_NAME, spec=spec.name,
                                model_hash=model_hash(graph), checkpoint=Path(checkpoint).name, mtdsl=__version__))
    if not postprocess:
        for task, setup in setups.items():
            np.save(out / f"{task}.anchors.npy", setup.anchor_boxes().numpy())
            written.append(out / f"{task}.anchors.npy")
    sidecar = sidecar_json(compilation, chosen, outputs, setups, format, postprocess, nms,
                           files=[path.name for path in written])
    written.append(write_atomic(out / SIDECAR, json.dumps(sidecar, indent=1) + "\n"))
    return written


def _refuse_non_finite(state_dict: dict[str, torch.Tensor], checkpoint: str | Path) -> None:
    """An export of NaN weights would load and run, and answer NaN for every image: refuse it, naming them."""
    bad = non_finite(state_dict)
    if bad:
        named = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ExportError(f"checkpoint {checkpoint} has non-finite weights (NaN or infinity) in {len(bad)} of "
                          f"{len(state_dict)} tensors: {named}",
                          hint="the run diverged before this checkpoint was saved: export an earlier one, "
                               "or train again (a lower lr, or grad_clip)")


def _refuse_used(out: Path, overwrite: bool) -> None:
    found = [name for name in (*FORMATS.values(), SIDECAR, WEIGHTS_NAME) if (out / name).exists()]
    if found and not overwrite:
        raise ArtefactError(f"{out} already holds an export ({', '.join(found)})",
                            hint="choose another --out, or pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise ArtefactError(f"--out {out} is a file, not a folder", hint="choose a folder for the export")


def _write_program(model: torch.nn.Module, example: torch.Tensor, names: list[str], path: Path,
                   format: str) -> list[Path]:
    """Export ``model`` to ``path``; returns the files written: ``path``, then ONNX's external data if any.

    The exporter writes into a hidden folder beside ``path``, whose files are moved in place only once all are
    written; ONNX's external data is named after the file it is written beside (``model.onnx.data``) and
    referred to by that name, so it must be written under its final name.
    """
    staging = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)  # a previous export's, stopped half-way
    staged = staging / path.name
    external = path.with_name(f"{path.name}.data")
    try:
        staging.mkdir(parents=True)
        with torch.no_grad():
            if format == "onnx":
                _onnx(model, example, names, staged)
            elif format == "torch.export":
                torch.export.save(torch.export.export(model, (example,)), str(staged))
            else:
                torch.jit.save(torch.jit.trace(model, (example,), strict=False), str(staged))
        extras = sorted(file for file in staging.iterdir() if file != staged)
        if [file.name for file in extras] not in ([], [external.name]):
            raise ExportError(f"the {format} exporter wrote files mtdsl does not know: "
                              f"{', '.join(file.name for file in extras)}",
                              hint="report it with the spec and the versions of torch, onnx and onnxscript")
        written = [path, *([external] if extras else [])]
        for file in reversed(written):  # the data before the program that needs it
            (staging / file.name).replace(file)
        if not extras:
            external.unlink(missing_ok=True)  # an earlier, larger export's, which this one does not use
    except ExportError:
        raise
    except Exception as error:  # the exporter's own failure: a message, not its traceback
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ExportError(f"{format} export of this model failed: {reason}",
                          hint=f"try another --format ({', '.join(f for f in FORMATS if f != format)}); "
                               "if every format fails, report it with the spec") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def _onnx(model: torch.nn.Module, example: torch.Tensor, names: list[str], path: Path) -> None:
    try:
        import onnx  # noqa: F401 - torch.onnx needs both; say so before it fails deep inside
        import onnxscript  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs the onnx and onnxscript packages",
                          hint="pip install 'mtdsl[export]' (onnx, onnxscript, onnxruntime)") from None
    batch = torch.export.Dim("batch", min=1, max=1024)
    size = sum(tensor.nbytes for tensor in (*model.parameters(), *model.buffers()))
    torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["image"], output_names=names,
                      external_data=size > EXTERNAL_DATA_BYTES,
                      dynamic_shapes={"image": {0: batch}}, verbose=False, report=False,
                      custom_translation_table={torch.ops.mtdsl.nms_keep.default: nms_keep_onnx})


def sidecar_json(compilation: Compilation, tasks: list[str], outputs: list[Output], setups: dict, format: str,
                 postprocess: bool, nms: bool = False, files: list[str] | None = None) -> dict:
    """What a deployer needs beside the model file: input, and per task its classes and outputs.

    ``files``: every file of the export but the sidecar, the program first (default: the program and
    the weights).
    """
    files = files or [FORMATS[format], WEIGHTS_NAME]
    spec = compilation.spec
    backbone = next(iter(spec.model.backbones.values()))
    mean, std = normalization(backbone.model)
    document: dict = {
        "spec": spec.name,
        "mtdsl": __version__,
        "format": format,
        "file": FORMATS[format],
        "external_data": next((name for name in files if name == f"{FORMATS[format]}.data"), None),
        "weights": WEIGHTS_NAME,
        "files": [*files, SIDECAR],
        "input": {
            "name": "image",
            "shape": ["N", spec.model.input.channels, spec.model.input.height, spec.model.input.width],
            "dtype": "float32",
            "layout": "RGB, channels first; pixel values scaled to [0, 1], then (x - mean) / std per channel",
            "mean": list(mean),
            "std": list(std),
        },
        "postprocess": postprocess,
        "nms_inside": nms,
        "tasks": {},
    }
    labels = {label.task: label for label in task_labels(spec, tasks)}
    for task in tasks:
        names = class_names(labels[task])
        entry: dict = {
            "kind": labels[task].kind,
            "classes": list(names) if names else spec.model.tasks[task].num_outputs,
            "outputs": [{"name": o.name, "shape": list(o.shape), "meaning": o.meaning} for o in outputs
                        if o.task == task],
        }
        if task in setups:
            setup = setups[task]
            anchors = setup.anchors
            entry["anchors"] = {
                "count": len(setup.anchor_boxes()),
                "file": None if postprocess else f"{task}.anchors.npy",
                "min_level": anchors.min_level, "max_level": anchors.max_level, "num_scales": anchors.num_scales,
                "aspect_ratios": [list(r) for r in anchors.aspect_ratios], "anchor_scale": anchors.anchor_scale,
            }
            entry["nms"] = {"score_threshold": setup.score_threshold, "iou": setup.nms_iou,
                            "max_detections": setup.max_detections, "per_class": True,
                            "pre_nms_top_k": PRE_NMS_TOP_K, "inside_model": nms}
        document["tasks"][task] = entry
    return document
