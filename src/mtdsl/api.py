"""mtdsl from Python: compile a spec, train it, load what it trained and predict with it.

The three functions are what the CLI's ``compile``, ``train`` and ``predict`` do, for a
notebook or a script; ``import mtdsl`` reaches them lazily, so importing the package
stays cheap and loads no torch until one of them is called::

    import mtdsl

    compilation = mtdsl.compile("specs/quickstart.mtl", data="../shared/data")
    model = compilation.model()                       # a fresh torch module, random weights
    result = mtdsl.train(compilation, out="runs/quickstart")
    trained = mtdsl.load(result.run_dir)              # the best checkpoint, in eval mode
    trained.predict(["cat.jpg"])[0]["shape"]["class"]

Every user mistake raises an :class:`~mtdsl.errors.MtdslError` subclass, whose
``str`` is the located message the CLI prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtdsl.compiler import Compilation, compile_file, compile_text
from mtdsl.errors import ArtefactError, SpecValueError

if TYPE_CHECKING:  # torch and Pillow are imported where used: compiling needs neither
    import torch
    from PIL import Image

__all__ = ["Compilation", "TrainResult", "TrainedModel", "compile", "load", "train"]

SpecLike = str | Path | Compilation


def compile(spec: str | Path, /, **overrides: object) -> Compilation:
    """Parse, validate and compile a spec into its sharing graph.

    Args:
        spec: a path to a ``.mtl`` file, or the spec's text (a ``str`` with a line break in it).
        **overrides: values for the spec's ``let`` variables, as ``--set NAME=VALUE`` gives them:
            ``mtdsl.compile(path, arch="efficientnet_b3", epochs=2)``. Strings are read as
            ``--set`` reads its text; numbers and booleans are written as the spec would write them.

    Returns:
        The :class:`~mtdsl.compiler.Compilation`: ``.spec``, ``.graph`` and ``.model()``, a fresh
        randomly initialised ``MultiTaskModel``.

    Raises:
        MtdslError: a mistake in the spec (syntax, names, values, backbones), located.

    >>> compilation = compile('''model demo
    ... let classes = 3
    ... backbone trunk = timm("test_resnet")
    ... dataset d = synthetic()
    ... task a: classify(d) { classes = ${classes} }''', classes=5)
    >>> import torch
    >>> compilation.model()(torch.zeros(1, 3, 64, 64))["a"].shape
    torch.Size([1, 5])
    """
    raw = {name: _set_value(name, value) for name, value in overrides.items()}
    if isinstance(spec, str) and "\n" in spec:
        return compile_text(spec, overrides=raw)
    return compile_file(spec, raw)


def _set_value(name: str, value: object) -> str:
    """``value`` as the text of ``--set name=…``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return str(value)
    raise SpecValueError(f"{name}={value!r}: a spec variable is a string, a number or a boolean, "
                         f"not {type(value).__name__}", hint=f"pass {name}=str(...)")


def _compiled(spec: SpecLike, overrides: Mapping[str, object] | None) -> Compilation:
    if isinstance(spec, Compilation):
        if overrides:
            raise SpecValueError("overrides apply when compiling; this spec is compiled already",
                                 hint="pass them to mtdsl.compile(spec, **overrides)")
        return spec
    return compile(spec, **(overrides or {}))


@dataclass(frozen=True)
class TrainResult:
    """What a training run left: where, which epoch won, and how it scored on the test split.

    Attributes:
        run_dir: the run folder (checkpoints, metrics, plots, ``test.json``).
        best_epoch: the epoch of ``checkpoints/best.pt``, the best mean validation metric.
        test: per task, every metric of the best checkpoint on the test split (val where a
            task's data has no test split; ``splits`` says which).
        mains: per task, the name of its main metric.
        splits: per task, the split ``test`` was measured on.
    """

    run_dir: Path
    best_epoch: int | None
    test: dict[str, dict[str, float]]
    mains: dict[str, str]
    splits: dict[str, str | None] = field(default_factory=dict)

    @property
    def main(self) -> dict[str, float]:
        """Each task's main metric on the test split."""
        return {task: self.test[task][name] for task, name in self.mains.items() if task in self.test}

    @property
    def best(self) -> Path:
        """The best checkpoint, for :func:`load`."""
        return self.run_dir / "checkpoints" / "best.pt"


def train(spec: SpecLike, /, out: str | Path | None = None, *, resume: bool = False, overwrite: bool = False,
          seed: int | None = None, device: str | None = None, workers: int | None = None, quiet: bool = False,
          overrides: Mapping[str, object] | None = None, announce: Callable[[str], object] | None = None,
          sync_batchnorm: bool = False) -> TrainResult:
    """Compile (unless compiled already) and train a spec into a run folder, as ``mtdsl train`` does.

    Args:
        spec: a spec path or text (compiled with ``overrides``), or a :class:`Compilation`.
        out: the run folder; ``runs/<spec name>`` by default. One that holds a run is refused
            unless ``resume`` or ``overwrite`` says what to do with it.
        resume: continue the run in ``out`` from its last checkpoint.
        overwrite: delete the run in ``out`` first.
        seed: the random seed (default: the spec's ``train { seed }``).
        device: ``cpu``, ``cuda`` or ``cuda:N`` (default: CUDA when available).
        workers: data-loading processes per stream (default: the spec's).
        quiet: no progress, tables or file lists.
        overrides: the spec's ``let`` variables, as for :func:`compile`.
        announce: receives the one line said before training (``print`` by default).
        sync_batchnorm: under torchrun on GPUs, BatchNorm statistics over the whole batch.

    Returns:
        The run's :class:`TrainResult`.

    Raises:
        MtdslError: a mistake in the spec or its data, a used run folder, a non-finite loss.
        KeyboardInterrupt: Ctrl-C or SIGTERM; the last checkpoint is kept and ``resume=True`` continues.
    """
    from mtdsl.launch import train_compiled
    from mtdsl.train.loop.precision import pick_device
    from mtdsl.train.run.folder import RunFolder
    from mtdsl.train.run.report import MetricsLog

    compilation = _compiled(spec, overrides)
    pick_device(device)  # a wrong device is refused before anything is written
    run = RunFolder(Path(out) if out is not None else Path("runs") / compilation.spec.name)
    outcome = train_compiled(compilation, run, resume=resume, overwrite=overwrite, seed=seed, device=device,
                             workers=workers, quiet=quiet,
                             announce=announce or ((lambda line: None) if quiet else print),
                             sync_batchnorm=sync_batchnorm)
    tests = [record for record in MetricsLog.read(run.metrics) if record.get("event") == "test"]
    return TrainResult(run.root, tests[-1].get("epoch") if tests else None, outcome["results"],
                       dict(outcome["mains"]), dict(outcome.get("splits", {})))


@dataclass
class TrainedModel:
    """A trained model in eval mode, ready to predict: what :func:`load` returns.

    Attributes:
        module: the ``MultiTaskModel`` with the checkpoint's weights, in eval mode; call it on a
            normalised batch for raw outputs (a dict keyed by task).
        compilation: the spec and sharing graph it was built from.
        checkpoint: the checkpoint file its weights came from.
        device: where it runs.
    """

    module: torch.nn.Module
    compilation: Compilation
    checkpoint: Path
    device: torch.device

    @property
    def tasks(self) -> list[str]:
        return list(self.compilation.spec.model.tasks)

    def __call__(self, images: torch.Tensor, tasks: Sequence[str] | None = None) -> dict[str, Any]:
        """The raw outputs for a batch ``(N, 3, H, W)`` already normalised as in training."""
        import torch

        with torch.no_grad():
            return self.module(images.to(self.device), tasks=list(tasks) if tasks is not None else None)

    def predict(self, images: Iterable[str | Path | Image.Image] | str | Path | Image.Image, *,
                tasks: str | Iterable[str] | None = None, batch_size: int = 8) -> list[dict[str, dict[str, Any]]]:
        """Each task's decoded output for each image, as ``mtdsl predict`` writes it to ``predictions.json``.

        Args:
            images: PIL images, image files or folders of images (a folder's images by name), or one of them.
            tasks: the tasks to run (names or ``"a,b"``); all by default.
            batch_size: images per forward pass.

        Returns:
            One dict per image, in order, keyed by task: classify ``{"kind", "class", "score", "top"}``,
            binary ``{"kind", "positive", "score"}``, multilabel ``{"kind", "labels", "scores"}``,
            detect ``{"kind", "boxes": [{"box": [x0, y0, x1, y1], "class", "score"}]}`` in the
            image's pixels, segment ``{"kind", "fractions", "mask"}`` with ``mask`` a ``(H, W)``
            numpy array of class indices at the image's size.
        """
        from PIL import Image

        from mtdsl.predict.predictor import Predictor
        from mtdsl.predict.request import collect_images, read_image, requested_tasks

        spec, graph = self.compilation.spec, self.compilation.graph
        names = requested_tasks(spec, tasks)
        if batch_size < 1:
            raise SpecValueError(f"batch_size = {batch_size}: a batch holds at least one image", hint="e.g. 8")
        given = [images] if isinstance(images, (str, Path, Image.Image)) else list(images)
        pictures: list[Image.Image] = []
        for item in given:
            if isinstance(item, Image.Image):
                pictures.append(item.convert("RGB"))
            else:  # a file, or a folder standing for its images
                pictures += [read_image(file) for file in collect_images([item])]
        predictor = Predictor(spec, graph, self.module, names, self.device, batch_size)
        results: list[dict[str, dict[str, Any]]] = []
        for start in range(0, len(pictures), batch_size):
            for found in predictor(pictures[start:start + batch_size]):
                for task, mask in found.masks.items():
                    found.outputs[task]["mask"] = mask
                for output in found.outputs.values():
                    for box in output.get("boxes", []):
                        box.pop("class_index", None)
                results.append(found.outputs)
        return results


def load(path: str | Path, *, spec: SpecLike | None = None, device: str | None = None) -> TrainedModel:
    """A trained model from a run folder or a checkpoint, in eval mode with its weights loaded.

    Args:
        path: a run folder (its ``checkpoints/best.pt`` is loaded) or a checkpoint file
            written by ``mtdsl train``.
        spec: the spec it was trained from (a path, text or :class:`Compilation`); by default
            the run folder's own ``spec.mtl`` with the variables it was trained with (``spec.json``).
        device: ``cpu``, ``cuda`` or ``cuda:N`` (default: CUDA when available).

    Returns:
        The :class:`TrainedModel`.

    Raises:
        ArtefactError: no checkpoint or no spec where ``path`` points.
        TrainingError: the checkpoint is damaged or belongs to another model.
    """
    from mtdsl.predict.loading import load_model
    from mtdsl.train.loop.precision import pick_device

    path = Path(path)
    checkpoint = path / "checkpoints" / "best.pt" if path.is_dir() else path
    if not checkpoint.is_file():
        raise ArtefactError(f"no checkpoint at {checkpoint}",
                            hint="pass a run folder written by mtdsl train, or its checkpoints/best.pt")
    compilation = _compiled(spec, None) if spec is not None else _run_spec(checkpoint)
    torch_device = pick_device(device)
    module = load_model(compilation.spec, compilation.graph, checkpoint, torch_device)
    return TrainedModel(module, compilation, checkpoint, torch_device)


def _run_spec(checkpoint: Path) -> Compilation:
    """The spec of the run ``checkpoint`` belongs to: its ``spec.mtl``, with the variables of its ``spec.json``."""
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        if (folder / "spec.mtl").is_file():
            break
    else:
        raise ArtefactError(f"no spec.mtl beside {checkpoint} or in its run folder",
                            hint="pass the spec it was trained from: mtdsl.load(checkpoint, spec='specs/x.mtl')")
    from mtdsl.spec.load import load_spec
    from mtdsl.spec.variables import BUILTINS

    recorded: dict[str, object] = {}
    try:
        recorded = dict(json.loads((folder / "spec.json").read_text(encoding="utf-8")).get("variables", {}))
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # the spec's own defaults; a model that differs is refused by its fingerprint
    defaults = load_spec(folder / "spec.mtl").variables
    changed = {name: value for name, value in recorded.items()
               if name in defaults and name not in BUILTINS and defaults[name] != value
               and isinstance(value, (str, int, float, bool))}
    return compile(folder / "spec.mtl", **changed)
