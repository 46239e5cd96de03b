"""A trained checkpoint run on image files: drawn images, masks and JSON (``mtdsl predict``).

Per batch of images, each task sees its images the way it saw them in training (detect and
segment tasks, and the image-label tasks trained in the same batches as one, get the
letterbox; image-label tasks trained on their own get a resize and centre crop, as when
they are evaluated), then:

* classify, binary, multilabel: a class and its probability (softmax), a probability
  (sigmoid), the labels over 0.5;
* detect: boxes in original-image pixels. A detect task with ``crops = [breed]`` is the
  recursive detector (thesis §6.5, Fig. 6.4b): each box is cut from the original image,
  resized to the model's input, and run through the same model for the crop tasks, which
  label it;
* segment: a class per original pixel (argmax at network size, the letterboxed region cut
  out and resized back with nearest neighbour).

``out_dir`` receives ``predictions.json`` (everything, per image), ``detections.json``
(COCO results; only when a detect task ran), ``<stem>.png`` (the original image with its
boxes, their labels and the first segment task's mask drawn on it, under a band naming the
image-label results) and ``<stem>.<task>.png`` (class-index masks at the original size).

>>> report = predict(spec, graph, "runs/pets/checkpoints/best.pt", [Path("cat.jpg")],
...                  Path("predictions/pets"))  # doctest: +SKIP
>>> report.images[0].outputs["pet"]["boxes"][0]  # doctest: +SKIP
{'box': [12.0, 30.5, 200.1, 180.0], 'class': 'pet', 'score': 0.91,
 'crops': {'breed': {'class': 'Bengal', 'score': 0.77}}}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mtdsl.errors import (
    ArtefactError,
    SpecNameError,
    SpecValueError,
    TrainingError,
    did_you_mean,
    listing,
)
from mtdsl.render.label_results import label_output, label_text, rounded
from mtdsl.spec.document import Spec
from mtdsl.train.data.sources import IMAGE_SUFFIXES
from mtdsl.train.data.tasks import DENSE_KINDS, LABEL_KINDS
from mtdsl.train.data.transforms import IMAGE_ERRORS

#: Preprocessing views: ``letterbox`` keeps the aspect ratio (padding bottom/right), ``resize``
#: is the resize + centre crop of image-label evaluation.
LETTERBOX, RESIZE = "letterbox", "resize"

_IMAGE_HINT = f"pass image files ({', '.join(sorted(IMAGE_SUFFIXES))}) or folders holding them"


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class ImagePrediction:
    """What the model said about one image.

    Attributes:
        file: the image that was read.
        image_id: its ``image_id`` in ``detections.json``: its 1-based position among the images.
        size: ``(width, height)`` in original pixels.
        outputs: per task, the JSON-ready result (the ``"tasks"`` of its ``predictions.json`` entry):
            classify ``{"kind", "class", "score", "top": [{"class", "score"}, ...]}``; binary
            ``{"kind", "positive", "score"}`` (score = P(positive)); multilabel ``{"kind",
            "labels", "scores": {name: p}}``; detect ``{"kind", "boxes": [{"box": [x0, y0, x1,
            y1], "class", "score", "crops"?: {task: result}}]}`` in original pixels; segment
            ``{"kind", "mask", "fractions": {class: share of the pixels}}``.
        drawn: the PNG with the predictions drawn on the image.
        masks: per segment task, the class-index PNG at the image's size.
    """

    file: Path
    image_id: int
    size: tuple[int, int]
    outputs: dict[str, dict[str, Any]]
    drawn: Path | None = None
    masks: dict[str, Path] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "image_id": self.image_id,
            "width": self.size[0],
            "height": self.size[1],
            "drawn": self.drawn.name if self.drawn else None,
            "tasks": self.outputs,
        }


@dataclass
class PredictionReport:
    """Everything :func:`predict` wrote.

    Attributes:
        out_dir: the output folder.
        tasks: the tasks that were run, in spec order.
        images: one entry per image, in input order.
        predictions_json: ``predictions.json``.
        detections_json: ``detections.json`` (COCO results), ``None`` when no detect task ran.
        written: every file written, JSON files first.
    """

    out_dir: Path
    tasks: list[str]
    images: list[ImagePrediction]
    predictions_json: Path
    detections_json: Path | None
    written: list[Path]


# --------------------------------------------------------------------------------------------
# Checking the request
# --------------------------------------------------------------------------------------------


def requested_tasks(spec: Spec, tasks: str | Iterable[str] | None) -> list[str]:
    """The tasks to run in spec order (all when ``None``); ``"a,b"`` is split on commas.

    Raises:
        SpecNameError: a name is not a task of the spec.
    """
    known = list(spec.model.tasks)
    if tasks is None:
        return known
    names = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t.strip()]
    for name in names:
        if name not in spec.model.tasks:
            raise SpecNameError(
                f"--tasks {name}: spec '{spec.name}' has no task '{name}'",
                expected=f"tasks of the spec, comma-separated: {listing(known)}",
                hint=did_you_mean(name, known),
            )
    if not names:
        raise SpecNameError("--tasks names no task", expected=f"tasks of the spec, comma-separated: {listing(known)}")
    return [t for t in known if t in names]


def check_input(spec: Spec) -> None:
    """The input must be RGB (a checked spec already has a square one when it has detect or segment tasks).

    Raises:
        SpecValueError: pointing at the spec's ``input`` line.
    """
    size = spec.model.input
    if size.channels != 3:
        raise SpecValueError(
            f"predict reads RGB images, but the model's input has {size.channels} channels",
            spec.span("input"), source=spec.source, expected=f"input 3x{size.height}x{size.width}",
        )


def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """Image files, with each folder replaced by its image files (by name, not recursive).

    Each file's header is read, so a missing or non-image file fails here, before any model
    is built.

    Raises:
        ArtefactError: a path does not exist, a folder holds no images, or a file is not an
            image PIL can open.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise ArtefactError(f"the folder {path} holds no images", expected=_IMAGE_HINT)
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise ArtefactError(f"no image at {path}", hint=f"check the path; {_IMAGE_HINT}")
    if not files:
        raise ArtefactError("no images to predict on", hint=_IMAGE_HINT)
    for file in files:
        try:
            with Image.open(file):
                pass
        except IMAGE_ERRORS as error:
            raise _unreadable(file, error) from None
    return files


def _unreadable(file: Path, error: BaseException) -> ArtefactError:
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return ArtefactError(f"cannot read the image {file}: {reason}", hint=f"remove it from the list; {_IMAGE_HINT}")


def _read_image(file: Path) -> Image.Image:
    try:
        with Image.open(file) as image:
            return image.convert("RGB")
    except IMAGE_ERRORS as error:
        raise _unreadable(file, error) from None


def load_model(spec: Spec, graph: nx.DiGraph, checkpoint: str | Path, device: torch.device) -> torch.nn.Module:
    """The spec's model with the checkpoint's weights, on ``device``, in eval mode.

    Raises:
        ArtefactError: no file at ``checkpoint``.
        TrainingError: the file is unreadable, or was trained for another model.
    """
    from mtdsl.nn.model import MultiTaskModel
    from mtdsl.train.run.checkpoint import load_checkpoint
    from mtdsl.train.run.fingerprints import model_hash

    path = Path(checkpoint)
    example = f"runs/{Path(spec.source.path).stem}/checkpoints/best.pt"
    if path.is_dir():
        inside = [p for p in (path / "checkpoints" / "best.pt", path / "best.pt", path / "checkpoints" / "last.pt")
                  if p.is_file()]
        raise ArtefactError(
            f"--checkpoint {path} is a folder, not a checkpoint file",
            hint=f"pass {inside[0]}" if inside else f"pass a .pt file written by mtdsl train, e.g. {example}",
        )
    if not path.is_file():
        raise ArtefactError(
            f"no checkpoint at {path}",
            hint=f"pass a .pt file written by mtdsl train (e.g. {example}); train one with: mtdsl train SPEC",
        )
    state = load_checkpoint(path, model_hash=model_hash(graph))
    model = MultiTaskModel(graph, load_pretrained=False)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as error:
        raise TrainingError(
            f"checkpoint {path} holds no weights that fit this model: {str(error).splitlines()[0]}",
            hint="use a checkpoint written by mtdsl train for this spec",
        ) from None
    return model.to(device).eval()


# --------------------------------------------------------------------------------------------
# Turning outputs into results
# --------------------------------------------------------------------------------------------


def _crop_result(output: dict[str, Any]) -> dict[str, Any]:
    """A crop task's result without the whole-image extras (kind, top classes)."""
    return {key: value for key, value in output.items() if key not in ("kind", "top")}


def _fractions(mask: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    counts = np.bincount(mask.ravel().astype(np.int64), minlength=len(classes))[: len(classes)]
    return {name: rounded(count / max(mask.size, 1)) for name, count in zip(classes, counts.tolist())}


def _mask_image(mask: np.ndarray) -> Image.Image:
    """A class-index mask as a PNG-able image: 8-bit up to 256 classes, 16-bit beyond."""
    return Image.fromarray(mask.astype(np.uint8 if mask.max(initial=0) < 256 else np.uint16))


# --------------------------------------------------------------------------------------------
# The model run
# --------------------------------------------------------------------------------------------


@dataclass
class _Found:
    """One image's raw results, before anything is written."""

    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)


def task_views(spec: Spec, tasks: Sequence[str]) -> dict[str, list[str]]:
    """Which preprocessing each task gets: as its training batches had it.

    Detect and segment tasks are letterboxed; so is an image-label task trained in the same
    batches (the same stream) as one of them. Other image-label tasks get the resize and
    centre crop they were evaluated with.
    """
    dense_streams = {
        task for stream in spec.streams
        if any(spec.model.tasks[t].kind in DENSE_KINDS for t in stream.tasks) for task in stream.tasks
    }
    views: dict[str, list[str]] = {LETTERBOX: [], RESIZE: []}
    for task in tasks:
        dense = spec.model.tasks[task].kind in DENSE_KINDS or task in dense_streams
        views[LETTERBOX if dense else RESIZE].append(task)
    return {view: names for view, names in views.items() if names}


class _Predictor:
    """The model plus everything that turns a batch of original images into :class:`_Found` results."""

    def __init__(self, spec: Spec, graph: nx.DiGraph, model: torch.nn.Module, tasks: list[str],
                 device: torch.device, batch_size: int) -> None:
        from mtdsl.codegen.train_source import detection_setups
        from mtdsl.train.data.letterbox import Letterbox
        from mtdsl.train.data.transforms import ImageTransform, normalization

        self.spec, self.model, self.tasks, self.device, self.batch_size = spec, model, tasks, device, batch_size
        self.kinds = {name: task.kind for name, task in spec.model.tasks.items()}
        self.classes = {name: task.classes for name, task in spec.model.tasks.items()}
        height, width = spec.model.input.height, spec.model.input.width
        first_backbone = next(iter(spec.model.backbones.values()))
        mean, std = normalization(first_backbone.model)
        self.letterbox = Letterbox(height, tuple(mean), tuple(std), train=False)
        self.resize = ImageTransform((height, width), tuple(mean), tuple(std), train=False)
        self.input_size = (width, height)
        self.views = task_views(spec, tasks)
        setups = detection_setups(spec, graph)
        self.setups = {t: setups[t] for t in tasks if t in setups}
        self.crops = {t: list(spec.model.tasks[t].crops) for t in self.setups if spec.model.tasks[t].crops}

    def _forward(self, tensors: list[torch.Tensor], tasks: list[str]) -> dict[str, Any]:
        return self.model(torch.stack(tensors).to(self.device), tasks=tasks)

    @torch.no_grad()
    def __call__(self, images: list[Image.Image]) -> list[_Found]:
        found = [_Found() for _ in images]
        for view, tasks in self.views.items():
            if view == RESIZE:
                outputs = self._forward([self.resize(image, 0) for image in images], tasks)
                scales = None
            else:
                boxed = [self.letterbox(image, 0) for image in images]
                outputs = self._forward([b.image for b in boxed], tasks)
                scales = [b.scale for b in boxed]
            for task in tasks:
                kind = self.kinds[task]
                if kind in LABEL_KINDS:
                    for result, logits in zip(found, outputs[task]):
                        result.outputs[task] = label_output(kind, self.classes[task], logits)
                elif kind == "detect":
                    assert scales is not None
                    self._detect(task, outputs[task], images, scales, found)
                elif kind == "segment":
                    self._segment(task, outputs[task], images, found)
        return found

    def _detect(self, task: str, outputs: Any, images: list[Image.Image], scales: list[tuple[float, float]],
                found: list[_Found]) -> None:
        names = self.classes[task] or []
        for image, (sx, sy), detection, result in zip(images, scales, self.setups[task].detections(outputs), found):
            width, height = image.size
            # Boxes come in network pixels; padding lies bottom/right, so dividing by the scale is enough.
            boxes = detection["boxes"].float().cpu().numpy() / np.array([sx, sy, sx, sy], dtype=np.float32)
            boxes = np.clip(boxes, 0, np.array([width, height, width, height], dtype=np.float32))
            # A box wholly in the padding has no pixels in the image once clipped.
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            scores = detection["scores"].float().cpu().numpy()[keep]
            classes = detection["classes"].cpu().numpy().astype(np.int64)[keep]
            boxes = boxes[keep]
            entries = [
                {"box": [rounded(v, 2) for v in box.tolist()], "class": names[int(c)], "class_index": int(c),
                 "score": rounded(s)}
                for box, s, c in zip(boxes, scores, classes)
            ]
            if task in self.crops and entries:
                for entry, crop in zip(entries, self._classify_crops(image, boxes, self.crops[task])):
                    entry["crops"] = crop
            result.outputs[task] = {"kind": "detect", "boxes": entries}

    def _classify_crops(self, image: Image.Image, boxes: np.ndarray, tasks: list[str]) -> list[dict[str, Any]]:
        """Each box cut from the original image, resized to the input and labelled by ``tasks``."""
        width, height = image.size
        tensors = []
        for x0, y0, x1, y1 in boxes.tolist():
            left, top = min(math.floor(x0), width - 1), min(math.floor(y0), height - 1)
            right, bottom = max(left + 1, math.ceil(x1)), max(top + 1, math.ceil(y1))
            crop = image.crop((left, top, right, bottom)).resize(self.input_size, Image.Resampling.BILINEAR)
            tensors.append(self.resize.normalise(np.asarray(crop)))
        results: list[dict[str, Any]] = []
        for start in range(0, len(tensors), self.batch_size):
            outputs = self._forward(tensors[start:start + self.batch_size], tasks)
            for n in range(len(tensors[start:start + self.batch_size])):
                results.append({
                    t: _crop_result(label_output(self.kinds[t], self.classes[t], outputs[t][n])) for t in tasks
                })
        return results

    def _segment(self, task: str, logits: torch.Tensor, images: list[Image.Image], found: list[_Found]) -> None:
        side = self.letterbox.size
        if tuple(logits.shape[-2:]) != (side, side):
            logits = F.interpolate(logits.float(), size=(side, side), mode="bilinear", align_corners=False)
        labels = logits.argmax(1).cpu().numpy()
        names = self.classes[task] or []
        for image, label, result in zip(images, labels, found):
            width, height = image.size
            fitted_w, fitted_h = self.letterbox.fitted(width, height)
            inside = _mask_image(label[:fitted_h, :fitted_w])
            mask = np.asarray(inside.resize((width, height), Image.Resampling.NEAREST))
            result.masks[task] = mask
            result.outputs[task] = {"kind": "segment", "mask": None, "fractions": _fractions(mask, names)}


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _stems(files: Sequence[Path], mask_tasks: Sequence[str]) -> list[str]:
    """An output stem per image whose files (``stem.png``, ``stem.task.png``) no other image uses."""
    used: set[str] = set()
    stems = []
    for file in files:
        base, n = file.stem, 1
        while True:
            stem = base if n == 1 else f"{base}-{n}"
            names = {f"{stem}.png", *(f"{stem}.{task}.png" for task in mask_tasks)}
            if not names & used:
                break
            n += 1
        used |= names
        stems.append(stem)
    return stems


def _draw(predictor: _Predictor, image: Image.Image, result: _Found) -> Image.Image:
    """The image with every detect task's boxes, the first segment task's mask and a title of label results."""
    from mtdsl.render.predictions import draw_predictions

    boxes, scores, classes, labels = [], [], [], []
    offset = 0  # class indices run on across detect tasks, so each task's classes get their own colours
    for task in predictor.tasks:
        if predictor.kinds[task] != "detect":
            continue
        for entry in result.outputs[task]["boxes"]:
            boxes.append(entry["box"])
            scores.append(entry["score"])
            classes.append(offset + entry["class_index"])
            crops = " · ".join(label_text(t, out) for t, out in entry.get("crops", {}).items())
            labels.append(f"{entry['class']} {entry['score']:.2f}" + (f" · {crops}" if crops else ""))
        offset += len(predictor.classes[task] or [])
    segment = next((t for t in predictor.tasks if t in result.masks), None)
    title = "  ".join(
        f"{task}: {label_text(task, result.outputs[task])}" for task in predictor.tasks
        if predictor.kinds[task] in LABEL_KINDS
    )
    return draw_predictions(
        image,
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4) if boxes else None,
        scores=scores if boxes else None,
        classes=classes if boxes else None,
        labels=labels if boxes else None,
        mask=result.masks[segment] if segment else None,
        mask_names=predictor.classes[segment] if segment else None,
        title=title or None,
    )


def _coco_entries(predictor: _Predictor, image_id: int, result: _Found) -> list[dict[str, Any]]:
    from mtdsl.render.predictions import coco_results

    entries: list[dict[str, Any]] = []
    for task in predictor.tasks:
        if predictor.kinds[task] != "detect":
            continue
        boxes = result.outputs[task]["boxes"]
        detection = {
            "boxes": np.asarray([b["box"] for b in boxes], dtype=np.float64).reshape(-1, 4),
            "scores": np.asarray([b["score"] for b in boxes], dtype=np.float64),
            "classes": np.asarray([b["class_index"] for b in boxes], dtype=np.int64),
        }
        for entry, box in zip(coco_results([detection], [image_id], predictor.classes[task] or []), boxes):
            entry["task"] = task
            if "crops" in box:
                entry["crops"] = box["crops"]
            entries.append(entry)
    return entries


def _write_json(path: Path, value: Any) -> Path:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), disable=not enabled, transient=False)


def predict(
    spec: Spec,
    graph: nx.DiGraph,
    checkpoint: str | Path,
    images: Sequence[str | Path],
    out_dir: str | Path,
    *,
    device: str | torch.device | None = None,
    tasks: str | Iterable[str] | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> PredictionReport:
    """Run a checkpoint of ``spec`` on image files and write what it predicts into ``out_dir``.

    Args:
        spec: the validated spec the checkpoint was trained from.
        graph: its sharing graph (:func:`mtdsl.compiler.compile_spec`).
        checkpoint: a ``.pt`` file written by ``mtdsl train``.
        images: image files and folders of images (a folder's images by name, not recursive).
        out_dir: where the files go; created when missing, same-named files are replaced.
        device: ``cpu``, ``cuda``, ``cuda:N``; CUDA when available by default.
        tasks: the tasks to run (names or ``"a,b"``); all by default. A detect task's crop
            tasks label its boxes whether or not they are among them.
        batch_size: images (and box crops) per forward pass.
        progress: show a progress bar.

    Returns:
        The per-image results and every path written.

    Raises:
        SpecNameError: an unknown task in ``tasks``.
        SpecValueError: the input is not RGB.
        ArtefactError: a missing checkpoint, a missing or unreadable image, an unwritable ``out_dir``.
        TrainingError: the checkpoint is damaged or belongs to another model.
    """
    from mtdsl.train.loop.precision import pick_device

    names = requested_tasks(spec, tasks)
    check_input(spec)
    if batch_size < 1:
        raise SpecValueError(f"--batch-size {batch_size}: a batch holds at least one image", hint="e.g. --batch-size 8")
    files = collect_images(images)
    torch_device = device if isinstance(device, torch.device) else pick_device(device)
    model = load_model(spec, graph, checkpoint, torch_device)
    predictor = _Predictor(spec, graph, model, names, torch_device, batch_size)

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ArtefactError(f"cannot create output folder {out}: {error}", hint="choose another --out") from None
    mask_tasks = [t for t in names if predictor.kinds[t] == "segment"]
    stems = _stems(files, mask_tasks)

    predictions: list[ImagePrediction] = []
    coco: list[dict[str, Any]] = []
    pictures: list[Path] = []
    with _progress(progress) as bar:
        job = bar.add_task(f"predicting {', '.join(names)}", total=len(files))
        for start in range(0, len(files), batch_size):
            batch = files[start:start + batch_size]
            originals = [_read_image(file) for file in batch]
            for offset, (file, image, result) in enumerate(zip(batch, originals, predictor(originals))):
                image_id = start + offset + 1
                stem = stems[start + offset]
                entry = ImagePrediction(file, image_id, image.size, result.outputs)
                for task, mask in result.masks.items():
                    entry.masks[task] = out / f"{stem}.{task}.png"
                    _mask_image(mask).save(entry.masks[task], format="PNG")
                    result.outputs[task]["mask"] = entry.masks[task].name
                entry.drawn = out / f"{stem}.png"
                _draw(predictor, image, result).save(entry.drawn, format="PNG")
                pictures += [entry.drawn, *entry.masks.values()]
                coco += _coco_entries(predictor, image_id, result)
                for task in names:  # the drawing needed class indices; the JSON names classes
                    for box in result.outputs[task].get("boxes", []):
                        box.pop("class_index", None)
                predictions.append(entry)
            bar.advance(job, len(batch))

    written = []
    detections_json = None
    if predictor.setups:
        from mtdsl.render.predictions import write_coco_results

        detections_json = write_coco_results(coco, out / "detections.json")
        written.append(detections_json)
    predictions_json = _write_json(out / "predictions.json", {
        "spec": spec.name,
        "checkpoint": str(checkpoint),
        "tasks": {t: {"kind": predictor.kinds[t], "classes": predictor.classes[t]} for t in names},
        "images": [p.as_json() for p in predictions],
    })
    written.insert(0, predictions_json)
    return PredictionReport(out, names, predictions, predictions_json, detections_json, written + pictures)


def summary_lines(report: PredictionReport) -> list[str]:
    """One line per image: its label results, box counts and largest non-background mask classes."""
    lines = []
    for image in report.images:
        parts = []
        for task, output in image.outputs.items():
            kind = output["kind"]
            if kind in LABEL_KINDS:
                parts.append(f"{task} {label_text(task, output)}")
            elif kind == "detect":
                count = len(output["boxes"])
                parts.append(f"{task} {count} box{'es' if count != 1 else ''}")
            elif kind == "segment":
                shares = sorted(((share, name) for name, share in output["fractions"].items()
                                 if name.lower() != "background" and share > 0), reverse=True)[:2]
                parts.append(f"{task} " + (", ".join(f"{name} {share:.0%}" for share, name in shares) or "background"))
        lines.append(f"{image.file.name}: " + " · ".join(parts))
    return lines
