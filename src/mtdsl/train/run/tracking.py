"""The run's one log: ``metrics.jsonl``, and the experiment trackers fed from the same records.

Every record the loop logs goes through :meth:`RunLog.append`: first into
``metrics.jsonl`` (the run's own record, which plots, ``mtdsl compare`` and a
resume read), then to each tracker that ``train { track = … }`` or ``--track``
names, as scalars named by the record's path in JSON, at the record's epoch::

    {"event": "train", "epoch": 3, "losses": {"shape": 0.41}, "lr": 0.002}
        → train/losses/shape = 0.41 and train/lr = 0.002, step 3
    {"event": "val", "epoch": 3, "metrics": {"objects": {"AP": 0.2}}, "mean": 0.5}
        → val/metrics/objects/AP = 0.2 and val/mean = 0.5, step 3

So a tracker can show nothing that ``metrics.jsonl`` does not hold. Text values
(the phase's name) and undefined numbers (``null`` in the log) are not sent.
The diagram and the spec go to the trackers when they open, the plots,
prediction images and test tables when the run ends (:meth:`RunLog.attach`).

Trackers, each registered under the name a spec gives it:

* ``tensorboard``: event files in ``RUN/tensorboard`` (``tensorboard --logdir RUN/tensorboard``);
* ``mlflow``: one MLflow run, by default in ``RUN/mlflow.db`` with artifacts in
  ``RUN/mlartifacts``, or wherever ``MLFLOW_TRACKING_URI`` points.

Only rank 0 writes. A resumed run sends each record once: ``tracking.json``
in the run folder keeps the MLflow run's id and which records each tracker has
been sent. TensorBoard's events past the checkpoint a run resumes from are
purged (``purge_step``) and sent again as the run redoes them; MLflow keeps
the points it has (a resumed run recomputes them exactly) and gets only the new
ones. A tracker added when a run resumes is sent the records the run has so far.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from mtdsl.errors import Source, Span, TrainingError
from mtdsl.files import write_atomic
from mtdsl.spec.document import Spec
from mtdsl.train.run.folder import RunFolder
from mtdsl.train.run.report import MetricsLog

LEDGER = "tracking.json"
#: Files of the run folder the trackers get when they open: the diagram and the spec.
OPENING_FILES = ("architecture.png", "architecture.svg", "spec.mtl", "spec.json")
#: What goes to MLflow as an artifact; TensorBoard takes the images and the text.
ARTIFACT_SUFFIXES = (".png", ".svg", ".json", ".md", ".mtl")

#: URI schemes of the tracking stores that MLflow keeps in a database through SQLAlchemy.
_DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_MLFLOW_KEY = re.compile(r"[^\w\-. :/]")


def scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """A record's numbers, named by their path: ``{"event": "val", "main": {"shape": 0.9}}`` → ``val/main/shape``.

    >>> scalars({"event": "train", "epoch": 2, "phase": "all", "lr": 0.1, "losses": {"a": 1.5, "b": None}})
    {'train/lr': 0.1, 'train/losses/a': 1.5}
    """
    values: dict[str, float] = {}

    def walk(name: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(f"{name}/{key}", item)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            values[name] = float(value)

    event = str(record.get("event", "record"))
    for key, value in record.items():
        if key not in ("event", "epoch"):
            walk(f"{event}/{key}", value)
    return values


# ------------------------------------------------------------------ trackers


class Tracker:
    """One experiment tracker: where a run's scalars and files also go.

    Args:
        run: the run folder.
        state: what the tracker kept in ``tracking.json`` last time (empty for a new run).
        purge_step: TensorBoard's ``purge_step``: events from this step on are dropped (a resumed run redoes them).
        spec_name: the spec's name (MLflow's experiment).
    """

    name: ClassVar[str]
    #: Whether events after a step can be dropped, so a resumed run's redone epochs replace them.
    rewrites: ClassVar[bool] = False
    #: (module, pip package) pairs the tracker imports.
    requires: ClassVar[tuple[tuple[str, str], ...]]

    def __init__(self, run: RunFolder, state: Mapping[str, Any], purge_step: int | None, spec_name: str) -> None:
        self.state: dict[str, Any] = dict(state)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        raise NotImplementedError

    def files(self, paths: Sequence[Path], root: Path, step: int) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Make what was sent durable before ``tracking.json`` says it was."""

    def close(self, status: str) -> None:
        """End: ``FINISHED``, ``KILLED`` (Ctrl-C, SIGTERM) or ``FAILED``."""

    @staticmethod
    def relative(path: Path, root: Path) -> Path:
        """Where ``path`` lies in the run folder (``plots/losses.png``); its bare name when outside it."""
        try:
            return path.resolve().relative_to(root.resolve())
        except ValueError:
            return Path(path.name)

    @classmethod
    def missing(cls) -> list[str]:
        """The pip packages this tracker needs that are not installed."""
        return [package for module, package in cls.requires if importlib.util.find_spec(module) is None]


class TensorBoardTracker(Tracker):
    """Event files in ``RUN/tensorboard``: a scalar per number, the PNGs as images, the spec and tables as text."""

    name = "tensorboard"
    rewrites = True
    requires = (("tensorboard", "tensorboard"),)

    def __init__(self, run: RunFolder, state: Mapping[str, Any], purge_step: int | None, spec_name: str) -> None:
        super().__init__(run, state, purge_step, spec_name)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run.root / "tensorboard"), purge_step=purge_step)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, global_step=step)

    def files(self, paths: Sequence[Path], root: Path, step: int) -> None:
        import numpy as np
        from PIL import Image

        for path in paths:
            tag = self.relative(path, root).with_suffix("").as_posix()
            if path.suffix == ".png":
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB"))
                self.writer.add_image(tag, pixels, global_step=step, dataformats="HWC")
            elif path.suffix == ".md":
                self.writer.add_text(tag, path.read_text(encoding="utf-8"), global_step=step)
            elif path.suffix == ".mtl":  # indented: shown as code, not read as markdown
                text = path.read_text(encoding="utf-8")
                self.writer.add_text(tag, "".join(f"    {line}\n" for line in text.splitlines()), global_step=step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.close()


class MlflowTracker(Tracker):
    """One MLflow run: a metric per number, the files as artifacts.

    The store is ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///RUN/mlflow.db``
    with artifacts in ``RUN/mlartifacts``; the experiment is the spec's name. A
    resumed run continues the MLflow run whose id ``tracking.json`` holds.
    """

    name = "mlflow"
    requires = (("mlflow", "mlflow-skinny"), ("sqlalchemy", "sqlalchemy"), ("alembic", "alembic"))

    def __init__(self, run: RunFolder, state: Mapping[str, Any], purge_step: int | None, spec_name: str) -> None:
        super().__init__(run, state, purge_step, spec_name)
        from mlflow.tracking import MlflowClient

        for logger in ("mlflow", "alembic"):  # after mlflow's import, which sets its own: a new store's tables
            logging.getLogger(logger).setLevel(logging.WARNING)  # are not news to a training run

        uri = state.get("tracking_uri") or default_mlflow_uri(run)
        self.client = MlflowClient(tracking_uri=uri)
        run_id = state.get("run_id")
        if run_id:
            self.client.update_run(run_id, status="RUNNING")
        else:
            experiment = self.client.get_experiment_by_name(spec_name)
            if experiment is None:
                local = not os.environ.get("MLFLOW_TRACKING_URI")
                experiment_id = self.client.create_experiment(
                    spec_name, artifact_location=(run.root / "mlartifacts").resolve().as_uri() if local else None)
            else:
                experiment_id = experiment.experiment_id
                if experiment.lifecycle_stage == "deleted":
                    self.client.restore_experiment(experiment_id)
            run_id = self.client.create_run(
                experiment_id, run_name=run.root.name,
                tags={"mtdsl.spec": spec_name, "mtdsl.run_folder": str(run.root.resolve())}).info.run_id
        self.run_id: str = run_id
        self.state = {"tracking_uri": uri, "run_id": run_id}

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_key(name), value, now, step) for name, value in values.items()]
        for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 1000])

    def files(self, paths: Sequence[Path], root: Path, step: int) -> None:
        for path in paths:
            if path.suffix in ARTIFACT_SUFFIXES:
                folder = self.relative(path, root).parent.as_posix()
                self.client.log_artifact(self.run_id, str(path), None if folder == "." else folder)

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)


#: Every tracker, under the name ``train { track = … }`` gives it (``mtdsl.spec.tracking.TRACKERS``).
TRACKERS: dict[str, type[Tracker]] = {tracker.name: tracker for tracker in (TensorBoardTracker, MlflowTracker)}


def default_mlflow_uri(run: RunFolder) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else an SQLite store in the run folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(run.root / 'mlflow.db').resolve()}"


def mlflow_key(name: str) -> str:
    """``name`` with what MLflow refuses in a metric's name (``+``, ``(``, …) as ``_``.

    >>> mlflow_key("train/ratios/shape+colour")
    'train/ratios/shape_colour'
    """
    return _MLFLOW_KEY.sub("_", name)


def track_option(text: str) -> tuple[str, ...]:
    """``--track tensorboard,mlflow`` (or ``none``) as tracker names, for argparse.

    >>> track_option("tensorboard,mlflow"), track_option("none")
    (('tensorboard', 'mlflow'), ())
    """
    import argparse

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if names == ("none",):
        return ()
    for name in names:
        if name not in TRACKERS or names.count(name) > 1:
            raise argparse.ArgumentTypeError(
                f"{name!r} is {'listed twice' if name in TRACKERS else 'no tracker'}: give "
                f"{', '.join(TRACKERS)} (several joined by commas, e.g. tensorboard,mlflow) or none")
    return names


def with_trackers(spec: Spec, names: Sequence[str]) -> Spec:
    """``spec`` feeding the trackers ``names`` instead of its own (``mtdsl train --track``).

    The spec's ``track`` line no longer says what the run feeds, so its position is dropped:
    an error about the trackers then names ``--track``, not that line.
    """
    train = spec.train.model_copy(update={"track": tuple(names)})
    spans = {key: span for key, span in spec.spans.items() if key[:2] != ("train", "track")}
    return dataclasses.replace(spec, train=train, spans=spans)


def require_spec_trackers(spec: Spec) -> None:
    """:func:`require_trackers` for the spec's trackers, at its ``track`` line (or naming ``--track``)."""
    where = spec.spans.get(("train", "track"))
    require_trackers(spec.train.track, span=where, source=spec.source if where else None,
                     option="track" if where else "--track")


def missing_packages(names: Iterable[str]) -> dict[str, list[str]]:
    """``{tracker: [pip packages]}`` for the trackers in ``names`` that cannot be imported."""
    missing = {}
    for name in names:
        tracker = TRACKERS[name]
        packages = tracker.missing()
        if tracker is MlflowTracker and os.environ.get("MLFLOW_TRACKING_URI", "sqlite").split(":")[0] \
                not in _DATABASE_SCHEMES:
            packages = [p for p in packages if p not in ("sqlalchemy", "alembic")]  # a server or a file store
        if packages:
            missing[name] = packages
    return missing


def require_trackers(names: Iterable[str], *, span: Span | None = None, source: Source | None = None,
                     option: str | None = None) -> None:
    """Refuse to start a run whose trackers cannot be imported, naming what to pip install.

    Args:
        names: the trackers the run would feed.
        span, source: where the spec names them (``None`` for ``--track`` or a ``train.py`` run on its own).
        option: how they were chosen, for the message: ``track`` (the spec), ``--track``, or ``None``.

    Raises:
        TrainingError: a tracker's package is not installed.
    """
    missing = missing_packages(names)
    if not missing:
        return
    packages = list(dict.fromkeys(p for found in missing.values() for p in found))
    chosen = ", ".join(missing)
    what = {"track": f"track = {chosen}", "--track": f"--track {chosen}"}.get(option or "", f"the tracker {chosen}")
    raise TrainingError(
        f"{what} needs {_and(packages)}, which {'is' if len(packages) == 1 else 'are'} not installed",
        span, source=source,
        hint=f"pip install {' '.join(packages)} (or pip install 'mtdsl[track]'), or train without {chosen}",
    )


def _by_event(keys: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
    """``{("val", 2), ("val", 1)}`` → ``{"val": [1, 2]}``: what ``tracking.json`` keeps of the records sent."""
    by_event: dict[str, list[int]] = {}
    for event, epoch in sorted(keys):
        by_event.setdefault(event, []).append(epoch)
    return by_event


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# ------------------------------------------------------------------ the log


class RunLog:
    """``metrics.jsonl`` and the trackers a run feeds, written through one :meth:`append`.

    The trackers open at the first record (after :meth:`truncate_after`, when the
    run resumes), so a run that fails before its first epoch leaves no tracker run.
    As a context manager it ends the trackers' runs with the way the block ended.

    Args:
        run: the run folder.
        track: tracker names (:data:`TRACKERS`).
        enabled: whether this process writes (rank 0); the others' logs write nothing.
        spec_name: the spec's name, MLflow's experiment.

    Raises:
        TrainingError: a tracker's package is not installed.
    """

    def __init__(self, run: RunFolder, track: Sequence[str] = (), *, enabled: bool = True,
                 spec_name: str = "mtdsl") -> None:
        unknown = [name for name in track if name not in TRACKERS]
        if unknown:
            raise TrainingError(f"unknown tracker {unknown[0]!r}", hint=f"choose from {', '.join(TRACKERS)}")
        require_trackers(track)  # on every rank alike, so no rank is left waiting for one that stopped
        self.run = run
        self.jsonl = MetricsLog(run.metrics)
        self.track = tuple(track) if enabled else ()
        self.spec_name = spec_name
        self._resumed_after: int | None = None
        self._trackers: list[Tracker] | None = None
        self._written: dict[str, set[tuple[str, int]]] = {}
        self._ledger: dict[str, Any] = {}

    # The loop's interface, as MetricsLog's.

    def append(self, record: dict[str, Any]) -> None:
        """Add ``record`` to ``metrics.jsonl``, then send its numbers to every tracker."""
        self.jsonl.append(record)
        for tracker in self._open():
            self._send(tracker, record)

    def truncate_after(self, epoch: int) -> None:
        """A resume from epoch ``epoch``'s checkpoint: drop what the run redoes (:meth:`MetricsLog.truncate_after`)."""
        self.jsonl.truncate_after(epoch)
        self._resumed_after = epoch

    def attach(self, paths: Iterable[Path]) -> None:
        """Send files the run wrote (plots, prediction images, test tables) to every tracker, once."""
        files = [Path(path) for path in paths if Path(path).suffix in ARTIFACT_SUFFIXES and Path(path).is_file()]
        for tracker in self._open():
            self._send_files(tracker, files, ("files", self._last_epoch()))

    def close(self, status: str = "FINISHED") -> None:
        for tracker in self._trackers or []:
            tracker.close(status)
        self._trackers = []

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            self.close("FINISHED")
            return
        with contextlib.suppress(Exception):  # the run's own error is the one to see
            self.close("KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED")

    # Opening, and sending each record once.

    def _open(self) -> list[Tracker]:
        if self._trackers is not None:
            return self._trackers
        self._trackers = []
        if not self.track:
            return self._trackers
        # A new run starts a new ledger; a resumed one continues its trackers' runs.
        ledger = self._ledger = self._read_ledger() if self._resumed_after is not None else {}
        for name in self.track:
            sent = ledger.get("written", {}).get(name, {})
            written = {(event, int(epoch)) for event, epochs in sent.items() for epoch in epochs}
            purge_step = None
            if TRACKERS[name].rewrites and self._resumed_after is not None:
                redone = {key for key in written if key[1] > self._resumed_after}
                written -= redone
                purge_step = self._resumed_after + 1 if redone else None
            self._trackers.append(TRACKERS[name](self.run, ledger.get(name, {}), purge_step, self.spec_name))
            self._written[name] = written
        self._save_ledger()
        opening = [self.run.root / name for name in OPENING_FILES if (self.run.root / name).is_file()]
        for tracker in self._trackers:  # the diagram and the spec, then what the run logged before this tracker
            self._send_files(tracker, opening, ("opening", 0))
            for record in self.jsonl.records():
                self._send(tracker, record)
        return self._trackers

    def _send(self, tracker: Tracker, record: Mapping[str, Any]) -> None:
        key = (str(record.get("event", "record")), int(record.get("epoch") or 0))
        if key in self._written[tracker.name]:
            return
        tracker.scalars(scalars(record), step=key[1])
        self._sent(tracker, key)

    def _send_files(self, tracker: Tracker, paths: Sequence[Path], key: tuple[str, int]) -> None:
        if key in self._written[tracker.name] or not paths:
            return
        tracker.files(paths, self.run.root, step=key[1])
        self._sent(tracker, key)

    def _sent(self, tracker: Tracker, key: tuple[str, int]) -> None:
        tracker.flush()
        self._written[tracker.name].add(key)
        self._save_ledger()

    def _last_epoch(self) -> int:
        return max((int(r["epoch"]) for r in self.jsonl.records() if r.get("event") == "train"), default=0)

    def _read_ledger(self) -> dict[str, Any]:
        path = self.run.root / LEDGER
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        except ValueError:
            return {}  # torn: the trackers start afresh, as for a new run

    def _save_ledger(self) -> None:
        ledger = self._ledger
        ledger["written"] = {**ledger.get("written", {}), **{name: _by_event(written)
                                                             for name, written in self._written.items()}}
        for tracker in self._trackers or []:
            if tracker.state:
                ledger[tracker.name] = tracker.state
        write_atomic(self.run.root / LEDGER, json.dumps(ledger, indent=1) + "\n")
