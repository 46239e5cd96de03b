"""A run's folder is right or the run fails clearly: no silent overwrite, no other run's numbers.

Covers issue 10's items 3-8: ``--overwrite`` never reports the previous run's
results, a used folder is refused untouched, two runs cannot share a folder,
a multi-process launch is refused, a failed checkpoint write leaves no
temporary file and a clear message, and SIGTERM stops a run as Ctrl-C does.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import same_threads
from test_training import records, train, write_spec

from mtdsl.cli import main
from mtdsl.errors import TrainingError
from mtdsl.train.run.checkpoint import save_checkpoint
from mtdsl.train.run.folder import RUN_FILES, RunFolder


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` with its bytes and modification time."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def leftovers(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    """A spec and a folder holding one finished two-epoch run of it."""
    folder = tmp_path_factory.mktemp("finished")
    spec = write_spec(folder)
    assert train(spec, folder / "run") == 0
    return spec, folder / "run"


# ------------------------------------------------------------------ a used folder


@pytest.mark.parametrize("present", [*RUN_FILES, "checkpoints/last.pt"])
def test_a_folder_holding_any_part_of_a_run_is_refused_and_left_as_it_was(tmp_path, capsys, present):
    spec = write_spec(tmp_path)
    out = tmp_path / "run"
    (out / present).parent.mkdir(parents=True, exist_ok=True)
    if present in ("checkpoints", "plots", "predictions"):
        (out / present).mkdir()
        (out / present / "kept.txt").write_text("from an earlier run")
    else:
        (out / present).write_text("from an earlier run")
    (out / "model.py").write_text("# an earlier run's model")
    before = snapshot(out)

    assert train(spec, out) == 2
    message = capsys.readouterr().err
    assert "already holds a run" in message and "--resume" in message and "--overwrite" in message
    assert snapshot(out) == before  # nothing written, nothing deleted, not even a lock file


def test_the_generated_loop_refuses_a_used_folder_too(finished_run, tmp_path):
    from mtdsl.train.loop.runtime import load_generated

    spec, run = finished_run
    assert main(["compile", str(spec), "--out", str(tmp_path / "build")]) == 0
    loop = load_generated(tmp_path / "build" / "train.py")
    before = snapshot(run)
    with pytest.raises(TrainingError, match="already holds a run"):
        loop.train(run, quiet=True)
    assert snapshot(run) == before


def test_a_folder_with_only_compiled_artefacts_is_not_a_run(tmp_path):
    spec = write_spec(tmp_path, "    epochs = 1")
    assert main(["compile", str(spec), "--out", str(tmp_path / "build")]) == 0
    assert RunFolder(tmp_path / "build").run_files() == []
    assert train(spec, tmp_path / "build") == 0


# ------------------------------------------------------------- --overwrite and best.pt


def never_finite(monkeypatch) -> None:
    """Make every validation score nan, as a run whose metrics are all undefined would have."""
    import mtdsl.train.metrics.selection

    monkeypatch.setattr(mtdsl.train.metrics.selection, "mean_main", lambda results, mains: float("nan"))


def test_overwrite_deletes_the_old_run_so_its_results_cannot_pass_for_the_new(finished_run, tmp_path, monkeypatch,
                                                                               capsys):
    spec, finished = finished_run
    out = tmp_path / "run"
    out.mkdir()
    for path in finished.rglob("*"):
        if path.is_file():
            (out / path.relative_to(finished)).parent.mkdir(parents=True, exist_ok=True)
            (out / path.relative_to(finished)).write_bytes(path.read_bytes())
    old_best = torch.load(out / "checkpoints" / "best.pt", weights_only=True)
    (out / "predictions").mkdir()
    (out / "predictions" / "shapes.png").write_bytes(b"an old drawing of its dataset")  # what a run draws

    never_finite(monkeypatch)
    assert train(spec, out, "--overwrite", "--seed", "7") == 0
    assert "no epoch had a finite mean validation metric" in capsys.readouterr().err

    new_best = torch.load(out / "checkpoints" / "best.pt", weights_only=True)
    assert new_best["state"]["run"] != old_best["state"]["run"]
    assert new_best["state"]["epoch"] == 1  # with no finite score, the first epoch is this run's best
    assert not torch.equal(new_best["model"]["heads.shape.classifier.0.weight"],
                           old_best["model"]["heads.shape.classifier.0.weight"])
    assert len(records(out, "train")) == 2 and len(records(out, "test")) == 1  # only the new run's lines
    assert not (out / "predictions" / "shapes.png").exists()


def test_a_run_without_any_finite_validation_score_still_tests_its_own_weights(tmp_path, monkeypatch):
    spec = write_spec(tmp_path)
    never_finite(monkeypatch)
    assert train(spec, tmp_path / "run") == 0
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    (test,) = records(tmp_path / "run", "test")
    assert test["epoch"] == best["state"]["epoch"] == 1


# ------------------------------------------------------------------- one run a folder


HOLD = """
import sys, time
from pathlib import Path
from mtdsl.train.run.folder import RunFolder
with RunFolder(Path(sys.argv[1])).claim(resume=False, overwrite=False):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_folder_in_use_by_another_process_is_refused_naming_it(tmp_path, capsys):
    spec = write_spec(tmp_path)
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for flags in ((), ("--overwrite",), ("--resume",)):
            assert train(spec, out, *flags) == 2
            message = capsys.readouterr().err
            assert "in use by another training run" in message and f"pid {holder.pid}" in message
        assert not (out / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    assert train(spec, out) == 0  # a killed holder leaves no lock behind


def test_a_training_run_holds_its_folder_against_a_second_one(tmp_path, capsys):
    spec = write_spec(tmp_path, "    epochs = 30")
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "mtdsl", "train", str(spec), "--out", str(out), "--quiet"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not records(out, "train") and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first.poll() is None, "the first run ended before the second could try"
        assert train(spec, out, "--overwrite") == 2
        assert f"pid {first.pid}" in capsys.readouterr().err
    finally:
        first.kill()
        first.wait()


@pytest.mark.parametrize("environment", [
    {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"},
    {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"},
    {"WORLD_SIZE": "8", "RANK": "5", "LOCAL_RANK": "1"},
    {"LOCAL_RANK": "1"},
])
def test_compare_under_a_multi_process_launch_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch,
                                                                                     environment):
    """``mtdsl compare --train`` trains its models one after another in one process (training itself
    runs under torchrun: tests/test_distributed.py)."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    spec = write_spec(tmp_path)
    assert main(["compare", str(spec), "--train", "--out", str(tmp_path / "cmp"), "--quiet"]) == 2
    assert "mtdsl compare was launched as one of several processes" in capsys.readouterr().err
    assert not (tmp_path / "cmp").exists()


def test_a_single_process_torchrun_launch_trains(tmp_path, monkeypatch):
    for name, value in {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    assert train(write_spec(tmp_path, "    epochs = 1"), tmp_path / "run") == 0


# ------------------------------------------------------------------- disk full


def test_a_failed_checkpoint_write_removes_its_temporary_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint({"weights": torch.ones(3)}, path)
    before = path.read_bytes()

    def disk_full(state, file):
        file.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(TrainingError, match="No space left on device") as raised:
        save_checkpoint({"weights": torch.zeros(3)}, path)
    assert "still holds the previous checkpoint" in raised.value.message
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_real_write_failure_during_training_is_a_message_and_leaves_no_temporary_file(tmp_path):
    spec = write_spec(tmp_path, "    epochs = 1")
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "mtdsl", "train", str(spec), "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=240, preexec_fn=_file_size_limit(1_000_000),  # a checkpoint is ~4.5 MB
    )
    assert result.returncode == 2, result.stderr
    assert "cannot write checkpoint" in result.stderr and "Traceback" not in result.stderr
    assert leftovers(out) == []


def test_an_unwritable_run_folder_is_refused_before_training(tmp_path):
    spec = write_spec(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "mtdsl", "train", str(spec), "--out", str(tmp_path / "run"), "--quiet"],
        capture_output=True, text=True, timeout=240, preexec_fn=_file_size_limit(0),
    )
    assert result.returncode == 2
    assert "cannot write to the run folder" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_an_output_path_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert train(write_spec(tmp_path), tmp_path / "file" / "run") == 2
    assert "cannot create the run folder" in capsys.readouterr().err


# ------------------------------------------------------------------------ SIGTERM


def test_sigterm_to_the_whole_job_stops_it_cleanly_and_it_resumes(tmp_path):
    spec = write_spec(tmp_path, "    epochs = 5")
    spec.write_text(spec.read_text().replace("workers = 0", "workers = 2"))
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "mtdsl", "train", str(spec), "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=same_threads(),
    )
    try:
        deadline = time.monotonic() + 180
        while not records(out, "val") and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process.poll() is None, "the run ended before it could be stopped"
        time.sleep(0.5)  # into the next epoch, with loader workers running
        os.killpg(process.pid, signal.SIGTERM)  # as SLURM does: every process of the job
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:  # the test failed on the way: leave no training job running behind it
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()

    assert process.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in stdout and "--resume" in stdout
    assert "Traceback" not in stdout + stderr
    assert leftovers(out) == []
    stopped = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["state"]
    assert 1 <= stopped["epoch"] < 5 and stopped["within_epoch"]["steps"] >= 1  # saved after the step in flight
    assert len(records(out, "val")) == stopped["epoch"]
    assert train(spec, out, "--resume") == 0  # the lock went with the stopped process
    assert len(records(out, "val")) == 5
    assert train(spec, tmp_path / "whole") == 0  # the same run, never stopped
    for name, tensor in torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)["model"].items():
        assert torch.equal(torch.load(out / "checkpoints" / "last.pt", weights_only=True)["model"][name], tensor), name


@pytest.mark.parametrize("command", ["compile", "render"])
def test_compiling_into_a_run_folder_is_refused(finished_run, capsys, command):
    spec, run = finished_run
    before = snapshot(run)
    assert main([command, str(spec), "--out", str(run)]) == 2
    assert "holds a training run" in capsys.readouterr().err
    assert snapshot(run) == before


def test_resume_without_a_checkpoint_is_refused_instead_of_starting_afresh(tmp_path, capsys):
    spec = write_spec(tmp_path)
    assert train(spec, tmp_path / "typo", "--resume") == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()
    (tmp_path / "killed").mkdir()
    (tmp_path / "killed" / "spec.mtl").write_text(spec.read_text())  # killed before its first epoch ended
    assert train(spec, tmp_path / "killed", "--resume") == 2
    assert "no epoch of its run finished" in capsys.readouterr().err


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    assert train(write_spec(tmp_path), tmp_path / "run", "--resume", "--overwrite") == 2
    assert "pass one of them" in capsys.readouterr().err


@pytest.mark.parametrize("arguments, says", [
    (["--workers", "-1"], "out of range"),
    (["--workers", "two"], "not a whole number"),
    (["--seed", "-5"], "out of range"),
    (["--seed", str(2**64)], "out of range"),
    (["--device", "tpu"], "not a device"),
    (["--device", "cuda:7"], "--device cuda:7"),
])
def test_bad_command_line_values_are_refused_before_anything_is_written(tmp_path, capsys, arguments, says):
    spec = write_spec(tmp_path)
    with pytest.raises(SystemExit) as exited:
        sys.exit(train(spec, tmp_path / "run", *arguments))
    assert exited.value.code == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_resume_with_another_seed_is_refused(finished_run, tmp_path, capsys):
    spec, _finished = finished_run
    out = tmp_path / "run"
    assert train(spec, out, "--seed", "3") == 0
    assert train(spec, out, "--resume") == 2
    assert "resume with --seed 3" in capsys.readouterr().err


# ------------------------------------------------------------------ exiting

HOLD_LOADERS = """
import sys
import torch
from mtdsl.spec.data import SyntheticDataset
from mtdsl.spec.streams import Stream
from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.data.tasks import TaskLabels

labels = {"shape": TaskLabels("shape", "classify", ("circle", "square", "triangle"))}
loaders = StreamLoaders([Stream(("d",), ("shape",), 4)], {"d": SyntheticDataset(name="d", count=32, size=16)}, labels,
                        image_size=(16, 16), mean=(0.5,) * 3, std=(0.5,) * 3, seed=0, workers=1,
                        on_corrupt="error", device=torch.device("cpu"))
loaders.next_batch(0)
if sys.argv[1] == "close":
    loaders.close()
print("drawn", flush=True)
"""


@pytest.mark.parametrize("ending", ["close", "keep"])
def test_a_process_still_holding_its_training_loaders_exits(ending):
    """Loader workers ignore SIGTERM, so multiprocessing's exit handler (SIGTERM, then join) could wait on them forever.

    Found on specs/real/pets.mtl: matplotlib's pyparsing cached a traceback through the training
    loop's frames, which kept the loaders alive until the interpreter exited, and `mtdsl train`
    hung after printing its results. "keep" holds them in a global, as that cache did.
    """
    result = subprocess.run([sys.executable, "-c", HOLD_LOADERS, ending], capture_output=True, text=True, timeout=90)
    assert result.returncode == 0 and result.stdout == "drawn\n", result.stderr


def test_closing_the_loaders_stops_their_training_workers():
    import multiprocessing

    from mtdsl.spec.data import SyntheticDataset
    from mtdsl.spec.streams import Stream
    from mtdsl.train.data.loaders import StreamLoaders
    from mtdsl.train.data.tasks import TaskLabels

    before = set(multiprocessing.active_children())
    labels = {"shape": TaskLabels("shape", "classify", ("circle", "square", "triangle"))}
    loaders = StreamLoaders([Stream(("d",), ("shape",), 4)], {"d": SyntheticDataset(name="d", count=32, size=16)},
                            labels, image_size=(16, 16), mean=(0.5,) * 3, std=(0.5,) * 3, seed=0, workers=1,
                            on_corrupt="error", device=torch.device("cpu"))
    loaders.next_batch(0)
    assert set(multiprocessing.active_children()) - before
    loaders.close()
    assert not set(multiprocessing.active_children()) - before
    assert len(loaders.next_batch(0)["index"]) == 4  # a closed stream starts its workers again when asked
