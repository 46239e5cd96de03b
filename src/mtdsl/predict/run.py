"""``mtdsl predict``: check the request, load the model, run it batch by batch, write what it found."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import torch

from mtdsl.errors import ArtefactError, SpecValueError
from mtdsl.kinds import TASK_KINDS
from mtdsl.predict.coco_ids import source_ids
from mtdsl.predict.loading import load_model
from mtdsl.predict.predictor import Predictor, mask_image
from mtdsl.predict.request import check_input, collect_images, read_image, requested_tasks
from mtdsl.predict.results import ImagePrediction, PredictionReport
from mtdsl.predict.writing import coco_entries, draw, output_stems, write_json
from mtdsl.spec.document import Spec

__all__ = ["predict"]


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from mtdsl.console import make_console, plain

    console = make_console()  # off a terminal no bar: the summary that follows says what was done
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, disable=not enabled or plain(console), transient=False)


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
    predictor = Predictor(spec, graph, model, names, torch_device, batch_size)

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ArtefactError(f"cannot create output folder {out}: {error}", hint="choose another --out") from None
    mask_tasks = [t for t in names if TASK_KINDS[predictor.kinds[t]].targets == "masks"]
    stems = output_stems(files, mask_tasks)
    sources = source_ids(spec, list(predictor.setups))
    image_ids = sources.image_ids(files) or list(range(1, len(files) + 1))
    category_ids = {task: sources.category_ids(task, predictor.classes[task] or []) for task in predictor.setups}

    predictions: list[ImagePrediction] = []
    coco: list[dict[str, Any]] = []
    pictures: list[Path] = []
    with _progress(progress) as bar:
        job = bar.add_task(f"predicting {', '.join(names)}", total=len(files))
        for start in range(0, len(files), batch_size):
            batch = files[start:start + batch_size]
            originals = [read_image(file) for file in batch]
            for offset, (file, image, result) in enumerate(zip(batch, originals, predictor(originals))):
                image_id = image_ids[start + offset]
                stem = stems[start + offset]
                entry = ImagePrediction(file, image_id, image.size, result.outputs)
                for task, mask in result.masks.items():
                    entry.masks[task] = out / f"{stem}.{task}.png"
                    mask_image(mask).save(entry.masks[task], format="PNG")
                    result.outputs[task]["mask"] = entry.masks[task].name
                entry.drawn = out / f"{stem}.png"
                draw(predictor, image, result).save(entry.drawn, format="PNG")
                pictures += [entry.drawn, *entry.masks.values()]
                coco += coco_entries(predictor, image_id, result, category_ids)
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
    predictions_json = write_json(out / "predictions.json", {
        "spec": spec.name,
        "checkpoint": str(checkpoint),
        "tasks": {t: {"kind": predictor.kinds[t], "classes": predictor.classes[t]} for t in names},
        "images": [p.as_json() for p in predictions],
    })
    written.insert(0, predictions_json)
    return PredictionReport(out, names, predictions, predictions_json, detections_json, written + pictures)
