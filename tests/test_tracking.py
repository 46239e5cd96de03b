"""TensorBoard and MLflow get exactly the records of metrics.jsonl, read back by their own readers.

A tiny run (test_resnet, 32-pixel synthetic shapes, CPU) feeds both trackers;
TensorBoard's ``EventAccumulator`` and MLflow's ``MlflowClient`` must read back
every number of ``metrics.jsonl`` at its epoch, once, also across resumes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from mtdsl.cli import main
from mtdsl.errors import MtdslError, SpecNameError, TrainingError
from mtdsl.spec.load import load_text
from mtdsl.spec.tracking import TRACKERS as SPEC_TRACKERS
from mtdsl.train.loop.runtime import load_generated
from mtdsl.train.run.folder import RunFolder
from mtdsl.train.run.report import MetricsLog
from mtdsl.train.run.tracking import (
    TRACKERS,
    RunLog,
    mlflow_key,
    require_spec_trackers,
    scalars,
    track_option,
    with_trackers,
)


def event_accumulator():
    return pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def mlflow_tracking():
    return pytest.importorskip("mlflow.tracking")


@pytest.fixture
def file_store(tmp_path, monkeypatch):
    """MLflow's file store under ``tmp_path/mlruns``: a store of the user's, and quicker to create than SQLite."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3.18 wants it said
    return tmp_path / "mlruns"

SPEC = """
model tiny
input 3x32x32
backbone trunk = timm("test_resnet")
dataset shapes = synthetic(count = 64, size = 32, seed = 0)
task shape: classify(shapes) {{ classes = [circle, square, triangle] }}
task colour: classify(shapes) {{ classes = [red, green, blue]; branch = trunk.stage3 }}
task large: binary(shapes) {{ tap = trunk.stage3 }}
train {{
    epochs = 2
    batch_size = 16
    optimizer = adamw(lr = 0.003)
    schedule = constant
    workers = 0
{track}
}}
"""


def write_spec(folder: Path, track: str = "    track = [tensorboard, mlflow]") -> Path:
    path = folder / "tiny.mtl"
    path.write_text(SPEC.format(track=track), encoding="utf-8")
    return path


def train(spec: Path, out: Path, *extra: str) -> int:
    return main(["train", str(spec), "--out", str(out), "--quiet", *extra])


def expected_scalars(run: Path) -> dict[str, dict[int, float]]:
    """Every number of the run's metrics.jsonl: ``{name: {epoch: value}}``."""
    expected: dict[str, dict[int, float]] = {}
    for record in MetricsLog.read(run / "metrics.jsonl"):
        for name, value in scalars(record).items():
            assert record["epoch"] not in expected.setdefault(name, {}), f"{name} twice at {record['epoch']}"
            expected[name][record["epoch"]] = value
    return expected


def tensorboard_scalars(run: Path):
    """``({tag: [(step, value)]}, the EventAccumulator)`` of the run's event files."""
    events = event_accumulator().EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}, events


def mlflow_run(run: Path):
    ledger = json.loads((run / "tracking.json").read_text())["mlflow"]
    return mlflow_tracking().MlflowClient(tracking_uri=ledger["tracking_uri"]), ledger["run_id"]


def assert_trackers_hold_the_log(run: Path, redone: bool = False) -> None:
    """Each tracker holds every number of metrics.jsonl at its epoch, once, and nothing else.

    ``redone``: an epoch the trackers were sent was trained again after a resume. TensorBoard has the
    new values; MLflow keeps the first, the same but for the wall-clock times.
    """
    expected = expected_scalars(run)
    assert {"train/losses/shape", "train/lr", "train/ratios/shape+colour", "val/mean", "val/metrics/colour/accuracy",
            "test/mean"} <= set(expected)
    logged, _ = tensorboard_scalars(run)
    assert set(logged) == set(expected)
    for name, points in expected.items():
        steps = [step for step, _ in logged[name]]
        assert sorted(steps) == sorted(points), f"tensorboard {name}: steps {steps}"
        for step, value in logged[name]:
            assert value == pytest.approx(points[step], rel=1e-6, abs=1e-7), (name, step)  # stored as float32

    client, run_id = mlflow_run(run)
    assert set(client.get_run(run_id).data.metrics) == {mlflow_key(name) for name in expected}
    for name, points in expected.items():
        history = client.get_metric_history(run_id, mlflow_key(name))
        assert sorted(m.step for m in history) == sorted(points), f"mlflow {name}"
        if not (redone and name.endswith("seconds")):
            assert {m.step: m.value for m in history} == pytest.approx(points, rel=1e-12), name


def test_both_trackers_read_back_metrics_jsonl(tmp_path, file_store):
    run = tmp_path / "run"
    assert train(write_spec(tmp_path), run) == 0
    assert_trackers_hold_the_log(run)
    assert json.loads((run / "tracking.json").read_text())["mlflow"]["tracking_uri"] == file_store.as_uri()

    _, events = tensorboard_scalars(run)
    assert {"plots/losses", "plots/metrics"} <= set(events.Tags()["images"])
    assert {"spec/text_summary", "test/text_summary"} <= set(events.Tags()["tensors"])  # the spec, the test table
    client, run_id = mlflow_run(run)
    finished = client.get_run(run_id)
    assert finished.info.status == "FINISHED" and finished.data.tags["mtdsl.spec"] == "tiny"
    artifacts = {a.path for folder in ("", "plots") for a in client.list_artifacts(run_id, folder or None)}
    assert {"spec.mtl", "test.json", "test.md", "plots/losses.png"} <= artifacts
    assert client.get_experiment(finished.info.experiment_id).name == "tiny"


@pytest.mark.slow
def test_a_resumed_run_sends_each_record_once(tmp_path, file_store):
    """Stopped after epoch 1, resumed; then rolled back to epoch 1 after finishing, as a kill between
    the log and the checkpoint would leave it, and resumed again: no step twice, one MLflow run throughout."""
    spec, run = write_spec(tmp_path), tmp_path / "run"
    assert main(["compile", str(spec), "--out", str(run)]) == 0
    loop = load_generated(run / "train.py")
    loop.PHASES[:] = [dataclasses.replace(loop.PHASES[0], epochs=1)]
    loop.EPOCHS = 1

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    loop.finish = killed
    with pytest.raises(KeyboardInterrupt):
        loop.train(run, quiet=True)
    epoch_one = tmp_path / "epoch1.pt"
    shutil.copy(run / "checkpoints" / "last.pt", epoch_one)
    client, run_id = mlflow_run(run)
    assert client.get_run(run_id).info.status == "KILLED"
    assert [m.step for m in client.get_metric_history(run_id, "train/losses/shape")] == [1]

    assert train(spec, run, "--resume") == 0
    assert_trackers_hold_the_log(run)
    assert mlflow_run(run)[1] == run_id and client.get_run(run_id).info.status == "FINISHED"

    shutil.copy(epoch_one, run / "checkpoints" / "last.pt")  # epoch 2 was logged, but its checkpoint lost
    assert train(spec, run, "--resume") == 0
    assert_trackers_hold_the_log(run, redone=True)
    assert mlflow_run(run)[1] == run_id
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1


@pytest.mark.slow
def test_a_tracker_added_on_resume_gets_the_whole_run(tmp_path, file_store):
    spec, run = write_spec(tmp_path, ""), tmp_path / "run"
    assert train(spec, run) == 0
    assert not (run / "tensorboard").exists() and not (run / "tracking.json").exists()
    # The same spec (its hash leaves trackers out), resumed after its last epoch with --track.
    assert train(spec, run, "--resume", "--track", "tensorboard,mlflow") == 0
    assert_trackers_hold_the_log(run)


@pytest.mark.slow
def test_mlflow_keeps_a_run_in_the_run_folder_by_default(tmp_path, monkeypatch):
    """Without MLFLOW_TRACKING_URI: an SQLite store and the artifacts in the run folder, which --overwrite clears."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = RunFolder(tmp_path / "run")
    (run.root / "plots").mkdir(parents=True)
    (run.root / "plots" / "note.md").write_text("| a |\n|---|\n| 1 |\n")
    records = [{"event": "train", "epoch": 1, "losses": {"a": 0.5}}, {"event": "val", "epoch": 1, "mean": 0.25}]
    with RunLog(run, ("mlflow",), spec_name="demo") as log:
        for record in records:
            log.append(record)
        log.attach([run.root / "plots" / "note.md"])
    client, run_id = mlflow_run(run.root)
    assert client.tracking_uri == f"sqlite:///{(run.root / 'mlflow.db').resolve()}"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "train/losses/a")] == [(1, 0.5)]
    assert client.get_run(run_id).info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(run_id, "plots")] == ["plots/note.md"]
    assert (run.root / "mlartifacts").is_dir()
    assert {"mlflow.db", "mlartifacts", "tracking.json"} <= set(run.run_files())


def test_track_in_the_spec(tmp_path):
    def track_of(line: str) -> tuple[str, ...]:
        return load_text(SPEC.format(track=line), "t.mtl").train.track

    assert track_of("") == ()
    assert track_of("    track = none") == ()
    assert track_of("    track = mlflow") == ("mlflow",)
    assert track_of("    track = [tensorboard, mlflow]") == ("tensorboard", "mlflow")
    with pytest.raises(SpecNameError, match="unknown tracker 'wandb'") as caught:
        track_of("    track = [tensorboard, wandb]")
    assert (caught.value.span.line, caught.value.span.column) == (15, 27)  # at wandb
    assert "mlflow, none, tensorboard" in caught.value.expected
    with pytest.raises(SpecNameError, match="did you mean 'tensorboard'"):
        track_of("    track = tensorbord")
    with pytest.raises(MtdslError, match="listed twice"):
        track_of("    track = [mlflow, mlflow]")
    with pytest.raises(MtdslError, match="cannot be listed with trackers"):
        track_of("    track = [none, mlflow]")
    spec = load_text("let trackers = none\n" + SPEC.format(track="    track = ${trackers}"), "t.mtl",
                     {"trackers": "tensorboard"})
    assert spec.train.track == ("tensorboard",)
    assert set(TRACKERS) == set(SPEC_TRACKERS)  # one name, one writer


def test_trackers_change_no_fingerprint():
    from mtdsl.train.run.fingerprints import spec_hash

    plain = load_text(SPEC.format(track=""), "t.mtl")
    tracked = load_text(SPEC.format(track="    track = mlflow"), "t.mtl")
    assert spec_hash(plain) == spec_hash(tracked)  # so a run may resume with a tracker added
    assert spec_hash(plain) != spec_hash(load_text(SPEC.format(track="    seed = 3"), "t.mtl"))


def test_a_missing_tracker_package_is_named_at_the_track_line(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    spec = load_text(SPEC.format(track="    track = [tensorboard, mlflow]"), "t.mtl")
    with pytest.raises(TrainingError) as caught:
        require_spec_trackers(spec)
    error = caught.value
    assert (error.span.line, error.span.column) == (15, 13) and error.source.path == "t.mtl"
    assert "track = mlflow needs mlflow-skinny" in error.message and "pip install mlflow-skinny" in error.hint
    assert "t.mtl:15:13" in error.render()
    with pytest.raises(TrainingError, match="--track mlflow needs mlflow-skinny") as caught:
        require_spec_trackers(with_trackers(spec, ["mlflow"]))
    assert caught.value.span is None
    pytest.importorskip("tensorboard")
    require_spec_trackers(with_trackers(spec, ["tensorboard"]))  # installed: nothing to say

    # mtdsl train refuses before it writes anything, with the line and the package.
    path = write_spec(tmp_path)
    assert train(path, tmp_path / "run") == 2
    assert not (tmp_path / "run").exists()
    # RunLog (a train.py run on its own) says the same, without a line.
    with pytest.raises(TrainingError, match="the tracker mlflow needs"):
        RunLog(RunFolder(tmp_path / "other"), ("mlflow",))


def test_track_option():
    assert track_option("tensorboard") == ("tensorboard",)
    assert track_option("mlflow, tensorboard") == ("mlflow", "tensorboard")
    assert track_option("none") == ()
    for bad in ("wandb", "mlflow,mlflow"):
        with pytest.raises(Exception, match="tensorboard, mlflow"):
            track_option(bad)


def test_only_rank_zero_writes(tmp_path):
    pytest.importorskip("tensorboard")
    log = RunLog(RunFolder(tmp_path), ("tensorboard",), enabled=False)
    log.attach([])
    log.close()
    assert not (tmp_path / "tensorboard").exists() and not (tmp_path / "tracking.json").exists()


def test_scalar_names_follow_the_records():
    record = {"event": "val", "epoch": 3, "metrics": {"objects": {"AP": 0.25, "APl": None, "AP/car": 0.5}},
              "main": {"objects": 0.25}, "mean": 0.25, "weights": "ema", "finite": float("nan")}
    assert scalars(record) == {"val/metrics/objects/AP": 0.25, "val/metrics/objects/AP/car": 0.5,
                               "val/main/objects": 0.25, "val/mean": 0.25}
    assert mlflow_key("val/metrics/sign (stop)/AP") == "val/metrics/sign _stop_/AP"
