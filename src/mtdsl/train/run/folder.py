"""Where a run keeps its files, and who may write them.

::

    runs/q1/
      spec.mtl              the spec as it was when training started
      spec.json             the same spec resolved: variables and --set filled in, defaults made explicit
      provenance.jsonl      one line per training session: time, host, command, seed, world size,
                            package versions, mtdsl's git revision
      model.py, train.py    the generated model and training loop
      graph.json, architecture.{dot,svg,png}, summary.json
      metrics.jsonl         one JSON line per epoch: train losses, sampling ratios, validation metrics
      checkpoints/last.pt   written after every epoch (atomic)
      checkpoints/best.pt   the epoch with the best mean validation metric
      plots/losses.png, plots/metrics.png, plots/sampling.png, plots/gradients.png
      test.json, test.md    the final per-task results on the test split
      tensorboard/          TensorBoard's event files (train { track = tensorboard }, docs/tracking.md)
      mlflow.db, mlartifacts/  the MLflow run (track = mlflow) unless MLFLOW_TRACKING_URI names another store
      tracking.json         the MLflow run's id, and which records each tracker has been sent
      model.safetensors     the best checkpoint's model weights alone (mtdsl.train.run.weights)
      .lock                 held by the process training into the folder

A folder *holds a run* once any of :data:`RUN_FILES` is in it (a folder with
only ``mtdsl compile``'s artefacts does not). :meth:`RunFolder.claim` is the one
gate every training process passes: it refuses a folder that holds a run
unless ``--resume`` or ``--overwrite`` says what to do with it, and then
changes nothing in it; it takes an exclusive lock, so two runs never write
one folder; and with ``--overwrite`` it deletes the old run's files, so no
result of the old run can pass for one of the new. In ``checkpoints/``,
``plots/`` and ``predictions/`` it deletes only what a run writes there
(:data:`CHECKPOINT_FILES`, :data:`PLOT_FILES`, a drawing per dataset of the
old run's ``spec.json``): a file put there by hand is kept.

>>> import tempfile
>>> folder = RunFolder(Path(tempfile.mkdtemp()))
>>> with folder.claim(resume=False, overwrite=False):
...     folder.held_by_this_process()
True
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mtdsl.errors import ArtefactError, TrainingError

try:  # POSIX; elsewhere runs are not locked (the check for an existing run still applies)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: What a run writes beside the compiled artefacts; any of them means the folder holds a run.
RUN_FILES = ("spec.mtl", "spec.json", "provenance.jsonl", "metrics.jsonl", "checkpoints", "plots", "predictions",
             "test.json", "test.md", "model.safetensors", "tracking.json", "tensorboard", "mlflow.db", "mlartifacts")
LOCK_NAME = ".lock"

#: What a run writes in ``checkpoints/`` (the loop) and ``plots/`` (:func:`mtdsl.render.plots.plot_run`);
#: in ``predictions/`` it draws ``<dataset>.png`` per stream (:mod:`mtdsl.train.run.showcase`). ``--overwrite``
#: deletes these, and leftovers of an interrupted checkpoint write, and keeps every other file there.
CHECKPOINT_FILES = ("last.pt", "best.pt")
PLOT_FILES = ("losses.png", "metrics.png", "sampling.png", "gradients.png")

#: Locks this process holds: folder → (open lock file, how many claims are open). A process that
#: already holds a folder (``mtdsl train`` before it runs the loop) may claim it again.
_HELD: dict[Path, list] = {}


@dataclass(frozen=True)
class RunFolder:
    root: Path

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def provenance(self) -> Path:
        return self.root / "provenance.jsonl"

    @property
    def last(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "checkpoints" / "best.pt"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def results(self) -> Path:
        return self.root / "test"

    @property
    def weights(self) -> Path:
        return self.root / "model.safetensors"

    @property
    def lock(self) -> Path:
        return self.root / LOCK_NAME

    def run_files(self) -> list[str]:
        """The :data:`RUN_FILES` present: empty when the folder holds no run."""
        return [name for name in RUN_FILES if (self.root / name).exists()]

    def held_by_this_process(self) -> bool:
        return self.root.resolve() in _HELD

    @contextlib.contextmanager
    def claim(self, *, resume: bool, overwrite: bool) -> Iterator[RunFolder]:
        """Hold the folder for one run: refuse a used folder, lock it, and clear it for ``overwrite``.

        Claims nest within one process: the outer one checks and clears, inner ones only count.

        Raises:
            TrainingError: the folder holds a run and neither ``resume`` nor ``overwrite`` is set
                (nothing in it is changed); ``resume`` finds no checkpoint; both are set; or another
                process is training into it.
            ArtefactError: the folder cannot be created or written.
        """
        if resume and overwrite:
            raise TrainingError("--resume continues the run in the folder and --overwrite deletes it: pass one of them")
        key = self.root.resolve() if self.root.exists() else self.root.absolute()
        if key in _HELD:
            _HELD[key][1] += 1
            try:
                yield self
            finally:
                _HELD[key][1] -= 1
            return
        existed = self.root.is_dir()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ArtefactError(f"cannot create the run folder {self.root}: {error.strerror or error}",
                                hint="choose another --out") from None
        key = self.root.resolve()
        created_lock = not self.lock.exists()
        handle = self._lock()
        try:
            found = self.run_files()
            if found and not (resume or overwrite):
                raise TrainingError(
                    f"{self.root} already holds a run ({', '.join(found)})",
                    hint="pass --resume to continue it, --overwrite to delete it and start again, or another --out",
                )
            if resume and not self.last.exists():
                raise TrainingError(
                    f"there is nothing to resume in {self.root}: "
                    + ("no epoch of its run finished (no checkpoints/last.pt)" if found else "it holds no run"),
                    hint="start again with --overwrite" if found else "leave out --resume to start a run there",
                )
            if overwrite:
                self._delete_run_files()
            self._write_holder(handle)
        except BaseException:
            self._unlock(handle)
            if created_lock:
                self.lock.unlink(missing_ok=True)
                if not existed:
                    with contextlib.suppress(OSError):
                        self.root.rmdir()
            raise
        _HELD[key] = [handle, 1]
        try:
            yield self
        finally:
            _HELD[key][1] -= 1
            if _HELD[key][1] == 0:
                del _HELD[key]
                self._unlock(handle)

    def _lock(self):
        try:
            handle = open(self.lock, "a+b", buffering=0)
        except OSError as error:
            raise ArtefactError(f"cannot write to the run folder {self.root}: {error.strerror or error}",
                                hint="check its permissions and free space, or choose another --out") from None
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = _describe_holder(handle.read().decode("utf-8", "replace"))
                handle.close()
                raise TrainingError(
                    f"{self.root} is in use by another training run ({holder})",
                    hint="wait for it to finish or stop it, or train into another --out",
                ) from None
        return handle

    def _write_holder(self, handle) -> None:
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
        }
        try:
            handle.seek(0)
            handle.truncate()
            handle.write((json.dumps(holder) + "\n").encode("utf-8"))
        except OSError as error:
            raise ArtefactError(f"cannot write to the run folder {self.root}: {error.strerror or error}",
                                hint="check its permissions and free space, or choose another --out") from None

    @staticmethod
    def _unlock(handle) -> None:
        if fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            handle.close()

    def _delete_run_files(self) -> None:
        """Delete what the old run wrote; files mtdsl never writes stay, in its folders too."""
        written = {"checkpoints": self._written_checkpoints, "plots": self._written_plots,
                   "predictions": self._written_drawings}
        for name, chooser in written.items():  # before spec.json, through which the drawings are found
            folder = self.root / name
            if folder.is_dir() and not folder.is_symlink():
                for file in chooser([f for f in folder.iterdir() if f.is_symlink() or not f.is_dir()]):
                    file.unlink()
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when nothing else is in it
        for name in RUN_FILES:
            path = self.root / name
            if path.is_dir() and not path.is_symlink():
                if name not in written:
                    shutil.rmtree(path)  # a run writes no folder of this name: whatever it is, it is the run's
            elif path.exists() or path.is_symlink():
                path.unlink()

    @staticmethod
    def _written_plots(files: list[Path]) -> list[Path]:
        return [f for f in files if f.name in PLOT_FILES]

    @staticmethod
    def _written_checkpoints(files: list[Path]) -> list[Path]:
        """The checkpoints, and the temporary files of writes a kill cut short (``.last.pt.<pid>.tmp``)."""
        return [f for f in files if f.name in CHECKPOINT_FILES
                or (f.name.endswith(".tmp") and f.name.lstrip(".").split(".pt.")[0] + ".pt" in CHECKPOINT_FILES)]

    def _written_drawings(self, files: list[Path]) -> list[Path]:
        """``<dataset>.png`` (``a+b.png`` for joined datasets, ``<dataset>.<tasks>.png`` for one of several
        streams of a dataset) for the datasets of the old run's ``spec.json``."""
        try:
            datasets = set(json.loads((self.root / "spec.json").read_text(encoding="utf-8"))["datasets"])
        except (OSError, ValueError, KeyError, TypeError):
            return []  # without the old spec, nothing there is known to be the run's
        return [f for f in files if f.suffix == ".png" and set(f.stem.split(".")[0].split("+")) <= datasets]


def _describe_holder(text: str) -> str:
    """The lock file's record of who holds it, as one line."""
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']} on {holder['host']}, started {holder['started']}: {holder['command']}"
    except (ValueError, KeyError, TypeError):
        return "another process"
