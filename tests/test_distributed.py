"""Training in several processes under torchrun: gloo on the CPU, two processes.

The strong check is exactness where the maths allows it: with the backbone
frozen (its BatchNorm in eval mode) a step of two processes with half a batch
each is the same step as one process with the whole batch, so losses, weights
and sharded test metrics must agree to float rounding. Training every layer,
each process's BatchNorm sees only its half, so there the checks are that the
ranks stay bit-identical (the loop checks it every epoch) and learn as one
process does. Faults: a NaN on one rank, SIGTERM and SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_training import FOLDER_SPEC, _photo_folder, randomised, records, write_spec

from mtdsl.cli import _without_nproc, main
from mtdsl.errors import DataError, TrainingError
from mtdsl.spec.data import SyntheticDataset
from mtdsl.spec.streams import Stream
from mtdsl.train.data.batching import BalancedBatches, RankShare, ShuffledBatches
from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.metrics import metric_for
from mtdsl.train.parallel.world import World

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
HEADS_ONLY = "    phase heads { epochs = 2; freeze = [backbones] }"


def torchrun(*arguments: str, timeout: float = 240, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*TORCHRUN, *arguments], capture_output=True, text=True, timeout=timeout, **kwargs)


def losses(out: Path) -> list[dict[str, float]]:
    return [record["losses"] for record in records(out, "train")]


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]


def checkpoint_epoch(checkpoint: Path) -> int:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["state"]["epoch"]


# ------------------------------------------------------------ whole runs, two processes


def test_two_processes_with_a_frozen_backbone_take_the_steps_one_process_takes(tmp_path):
    spec = write_spec(tmp_path, HEADS_ONLY)
    assert main(["train", str(spec), "--out", str(tmp_path / "one"), "--quiet"]) == 0
    result = subprocess.run([sys.executable, "-m", "mtdsl", "train", str(spec), "--nproc", "2",
                             "--out", str(tmp_path / "two"), "--quiet"], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr

    for one, two in zip(losses(tmp_path / "one"), losses(tmp_path / "two"), strict=True):
        assert one.keys() == two.keys()
        for task in one:
            assert two[task] == pytest.approx(one[task], rel=1e-5), task
    one, two = (weights(tmp_path / name / "checkpoints" / "last.pt") for name in ("one", "two"))
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-5, atol=1e-6, msg=name)
    # Each process evaluated half the test batches; together they scored the whole split.
    tested = [records(tmp_path / name, "test")[0]["metrics"] for name in ("one", "two")]
    assert tested[1].keys() == tested[0].keys()
    for task, metrics in tested[0].items():
        assert tested[1][task] == pytest.approx(metrics, rel=1e-6, nan_ok=True), task
    assert [r["processes"] for r in records(tmp_path / "two", "train")] == [2, 2]
    sessions = [json.loads(line) for line in (tmp_path / "two" / "provenance.jsonl").read_text().splitlines()]
    assert [s["world_size"] for s in sessions] == [2]  # rank 0 alone writes the run folder


def test_two_processes_training_every_layer_stay_identical_and_learn(tmp_path):
    """Each epoch the loop stops if the ranks' weights (learned loss weights included) differ by a bit; the
    run finishing is the check. The spec has everything a rank could decide alone: dropout and drop-path,
    learned uncertainty weights, and dynamic sampling, which reacts to (merged) validation metrics."""
    spec = randomised(write_spec(tmp_path, "    epochs = 3", count=160))
    text = spec.read_text(encoding="utf-8").replace("classes = [red, green, blue];", "classes = [red, green, blue]; "
                                                    "target = 0.9;")
    text = text.replace("mlp(16, dropout = 0.3)", "mlp(16, dropout = 0.3); target = 0.9")
    # A target far above the others' makes dynamic sampling move whatever the augmentation's draws score.
    text = text.replace("{ tap = trunk.stage3 }", "{ tap = trunk.stage3; target = 1.0 }")
    spec.write_text(text.replace("    workers = 0", "    workers = 0\n    sampling = dynamic"), encoding="utf-8")
    assert main(["compile", str(spec), "--out", str(tmp_path / "run")]) == 0
    result = torchrun(str(tmp_path / "run" / "train.py"), "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert main(["train", str(spec), "--out", str(tmp_path / "one"), "--quiet"]) == 0

    two, one = losses(tmp_path / "run"), losses(tmp_path / "one")
    for task in two[0]:
        assert two[-1][task] < two[0][task], task  # learns
        # Each process's BatchNorm sees half a batch, and dropout draws other masks: close, not equal.
        assert 0.6 < two[0][task] / one[0][task] < 1.6, (task, two[0][task], one[0][task])
    ratios = [r["ratios"] for r in records(tmp_path / "run", "train")]
    assert ratios[1] != ratios[0]  # dynamic sampling moved, the same way on both ranks (or they would hang)
    assert (tmp_path / "run" / "test.json").is_file()


def test_two_processes_keep_one_weight_average(tmp_path):
    """``ema`` under torchrun: each rank averages its weights, and its BatchNorm statistics (each rank's
    own within an epoch) are averaged over the ranks at the epoch's end, as the model's are; the loop
    checks every epoch that the ranks' averages are bit for bit the same, so the run finishing is the check."""
    spec = write_spec(tmp_path, "    epochs = 2\n    ema = 0.9")
    assert main(["compile", str(spec), "--out", str(tmp_path / "run")]) == 0
    result = torchrun(str(tmp_path / "run" / "train.py"), "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stderr
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert any(not torch.equal(last["ema"][name], value) for name, value in last["model"].items())
    assert [r["weights"] for r in records(tmp_path / "run", "val")] == ["ema", "ema"]


def test_a_used_folder_is_refused_once_and_every_rank_stops_before_training(tmp_path):
    spec = write_spec(tmp_path, "    epochs = 1")
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    before = (tmp_path / "run" / "metrics.jsonl").read_bytes()
    result = torchrun("-m", "mtdsl", "train", str(spec), "--out", str(tmp_path / "run"), "--quiet", timeout=180)
    assert result.returncode != 0
    assert result.stderr.count("already holds a run") == 1, result.stderr  # rank 0 says it; rank 1 stops quietly
    assert "rank 1:" not in result.stderr
    assert (tmp_path / "run" / "metrics.jsonl").read_bytes() == before


def test_unreadable_photos_are_skipped_by_both_ranks_alike_or_named_without_a_traceback(tmp_path):
    """Many broken files, so some rank's share of a batch is left with one image or none: both ranks
    pass over that batch together (or one would wait in the all-reduce for ever)."""
    root = _photo_folder(tmp_path / "photos")
    for label in ("dark", "light"):
        for index in range(10):
            (root / label / f"broken{index}.jpg").write_bytes(b"not a jpeg at all")
    outcomes = {}
    for mode in ("skip", "error"):
        spec = tmp_path / f"{mode}.mtl"
        spec.write_text(FOLDER_SPEC.format(root=root, workers=0, on_corrupt=mode).replace("epochs = 1", "epochs = 2"))
        outcomes[mode] = subprocess.run([sys.executable, "-m", "mtdsl", "train", str(spec), "--nproc", "2",
                                         "--out", str(tmp_path / mode), "--quiet"],
                                        capture_output=True, text=True, timeout=240)
    assert outcomes["skip"].returncode == 0, outcomes["skip"].stderr
    assert records(tmp_path / "skip", "train")[-1]["skipped_images"] > 0  # counted over both ranks
    failed = outcomes["error"]
    assert failed.returncode == 2
    assert "cannot read the image" in failed.stderr and "on_corrupt = skip" in failed.stderr
    assert "stopped with exit status 2" in failed.stderr and 'File "' not in failed.stderr  # no traceback


def test_a_nan_on_one_rank_stops_both_at_the_same_step(tmp_path):
    spec = write_spec(tmp_path, "    epochs = 2")
    script = tmp_path / "nan_on_rank_1.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from mtdsl.cli import main
        from mtdsl.train.loop import readout

        original = readout.StepReadout.record
        steps = []

        def poisoned(self, stream, number, losses, *args):
            steps.append(1)
            if self.world.rank == 1 and len(steps) == 3:
                losses = {{task: loss * float("nan") for task, loss in losses.items()}}
            return original(self, stream, number, losses, *args)

        readout.StepReadout.record = poisoned
        sys.exit(main(["train", {str(spec)!r}, "--out", {str(tmp_path / "run")!r}, "--quiet"]))
    """), encoding="utf-8")
    started = time.monotonic()
    result = torchrun(str(script), timeout=180)
    assert result.returncode != 0
    assert time.monotonic() - started < 150  # no rank was left waiting in a collective
    stopped = [line for line in result.stderr.splitlines() if "became nan at epoch 1, step 2" in line]
    assert len(stopped) == 2, result.stderr  # both ranks, the same step
    assert any(line.startswith("rank 1: ") for line in stopped), stopped
    frames = [line for line in result.stderr.splitlines() if line.strip().startswith('File "')]
    assert not [frame for frame in frames if "/mtdsl/" in frame], result.stderr  # torchrun's own report only


def test_ranks_that_drift_apart_are_stopped(tmp_path):
    script = tmp_path / "drift.py"
    script.write_text(textwrap.dedent("""
        import sys, torch
        from mtdsl.errors import TrainingError
        from mtdsl.train.parallel.world import World

        world = World.from_environment()
        with world.joined(torch.device("cpu")):
            torch.manual_seed(0)
            model = torch.nn.Linear(3, 2)
            world.check_replicas(model, epoch=1)  # the same weights: passes
            if world.rank == 1:
                with torch.no_grad():
                    model.bias[0] += 2**-20  # one bit or so
            try:
                world.check_replicas(model, epoch=2)
            except TrainingError as error:
                print(f"rank {world.rank}: {error.message}")
                sys.exit(3)
    """), encoding="utf-8")
    result = torchrun(str(script), timeout=120)
    assert result.stdout.count("after epoch 2 the 2 processes no longer hold the same weights") == 2, result.stderr


@pytest.mark.slow
def test_a_sigkilled_two_process_run_resumes_to_the_same_result_and_at_any_world_size(tmp_path):
    spec = write_spec(tmp_path, "    epochs = 3")
    for name in ("whole", "killed"):
        assert main(["compile", str(spec), "--out", str(tmp_path / name)]) == 0
    whole = torchrun(str(tmp_path / "whole" / "train.py"), "--out", str(tmp_path / "whole"), "--quiet")
    assert whole.returncode == 0, whole.stderr

    killed = tmp_path / "killed"
    job = subprocess.Popen([*TORCHRUN, str(killed / "train.py"), "--out", str(killed), "--quiet"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 200
        while not (killed / "metrics.jsonl").exists() or not records(killed, "val"):
            assert job.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
            time.sleep(0.05)
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # torchrun and both ranks, at once
        job.wait()
    stopped_after = checkpoint_epoch(killed / "checkpoints" / "last.pt")
    assert stopped_after < 3
    copy = tmp_path / "killed-copy"
    subprocess.run(["cp", "-r", str(killed), str(copy)], check=True)

    resumed = torchrun(str(killed / "train.py"), "--out", str(killed), "--resume", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    for name, tensor in weights(tmp_path / "whole" / "checkpoints" / "last.pt").items():
        assert torch.equal(weights(killed / "checkpoints" / "last.pt")[name], tensor), name
    assert [r["epoch"] for r in records(killed, "train")] == [1, 2, 3]

    # The same stopped run, continued by one process: the batches are the same global ones.
    alone = subprocess.run([sys.executable, str(copy / "train.py"), "--out", str(copy), "--resume", "--quiet"],
                           capture_output=True, text=True, timeout=240)
    assert alone.returncode == 0, alone.stderr
    assert [r["epoch"] for r in records(copy, "train")] == [1, 2, 3]
    assert [r["processes"] for r in records(copy, "train")][-1] == 1


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_every_rank_cleanly_at_one_step_and_it_resumes_exactly(tmp_path):
    spec = write_spec(tmp_path, "    epochs = 4", count=480)
    for name in ("run", "whole"):
        assert main(["compile", str(spec), "--out", str(tmp_path / name)]) == 0
    run = tmp_path / "run"
    job = subprocess.Popen([*TORCHRUN, str(run / "train.py"), "--out", str(run), "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 200
    while not (run / "metrics.jsonl").exists() or not records(run, "val"):
        assert job.poll() is None and time.monotonic() < deadline, "the run ended before it could be stopped"
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    _, stderr = job.communicate(timeout=90)
    assert job.returncode != 0
    assert stderr.count("stopped by SIGTERM") == 1, stderr  # rank 0 says how to continue; rank 1 stops quietly
    assert "torchrun --nproc_per_node 2" in stderr and "--resume" in stderr
    assert 'File "' not in stderr.split("stopped by SIGTERM")[0].split("\n")[-1]
    stopped = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["state"]
    assert 1 <= stopped["epoch"] < 4 and stopped["within_epoch"]["steps"] >= 1  # the step both ranks finished

    resumed = torchrun(str(run / "train.py"), "--out", str(run), "--resume", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    whole = torchrun(str(tmp_path / "whole" / "train.py"), "--out", str(tmp_path / "whole"), "--quiet")
    assert whole.returncode == 0, whole.stderr
    for name, tensor in weights(tmp_path / "whole" / "checkpoints" / "last.pt").items():
        assert torch.equal(weights(run / "checkpoints" / "last.pt")[name], tensor), name


# ------------------------------------------------------------------ the parts, in one process


@given(batch=st.integers(1, 12), ranks=st.integers(1, 4), seed=st.integers(0, 1000))
def test_rank_shares_are_equal_parts_that_make_up_each_global_batch(batch, ranks, seed):
    size = batch * ranks
    global_batches = ShuffledBatches(3 * size, size, seed)
    shares = [iter(RankShare(ShuffledBatches(3 * size, size, seed), rank, ranks)) for rank in range(ranks)]
    for whole, _ in zip(global_batches, range(5)):
        parts = [next(share) for share in shares]
        assert all(len(part) == batch for part in parts)
        assert [example for part in parts for example in part] == whole


@given(ranks=st.sampled_from([2, 4]), seed=st.integers(0, 1000))
def test_every_rank_share_of_a_balanced_batch_is_balanced(ranks, seed):
    targets = torch.tensor([1.0] * 7 + [0.0] * 33)
    for rank in range(ranks):
        for share, _ in zip(RankShare(BalancedBatches(targets, 8, seed), rank, ranks), range(6)):
            positives = sum(int(targets[index]) for index, _ in share)
            assert positives == len(share) // 2


@pytest.mark.parametrize("kind, classes, target_shape", [
    ("classify", 4, ()), ("classify", 7, ()), ("binary", 1, (1,)), ("multilabel", 3, (3,)), ("segment", 3, (4, 4)),
])
def test_metrics_merged_from_shares_equal_the_metric_of_the_whole(kind, classes, target_shape):
    generator = torch.Generator().manual_seed(0)
    spatial = target_shape if kind == "segment" else ()
    high = 2 if kind in ("binary", "multilabel") else classes
    batches = [(torch.randn(10, classes, *spatial, generator=generator),
                torch.randint(0, high, (10, *target_shape), generator=generator)) for _ in range(5)]
    if kind in ("binary", "multilabel"):
        batches = [(logits, labels.float()) for logits, labels in batches]
    whole = metric_for(kind, classes)
    for batch in batches:
        whole.update(*batch)
    shares = [metric_for(kind, classes) for _ in range(2)]
    for index, batch in enumerate(batches):
        shares[index % 2].update(*batch)
    shares[0].merge(shares[1])
    assert shares[0].compute() == pytest.approx(whole.compute(), nan_ok=True)


def test_detection_metrics_merged_from_shares_score_the_boxes_of_both():
    def image(box, score):
        found = {"boxes": torch.tensor([box]), "scores": torch.tensor([score]), "classes": torch.tensor([0])}
        return found, {"boxes": [torch.tensor([[0.0, 0.0, 10.0, 10.0]])], "classes": [torch.tensor([0])]}

    right, wrong = image([0.0, 0.0, 10.0, 10.0], 0.9), image([20.0, 20.0, 30.0, 30.0], 0.8)
    whole, shares = metric_for("detect", 1, ["thing"]), [metric_for("detect", 1, ["thing"]) for _ in range(2)]
    for metric, (found, truth) in ((whole, right), (whole, wrong), (shares[0], right), (shares[1], wrong)):
        metric.update([found], truth)
    shares[0].merge(shares[1])
    assert shares[0].compute() == pytest.approx(whole.compute(), nan_ok=True)
    assert shares[0].compute()["AP"] < 1.0  # the second rank's wrong box counts


def test_sync_batchnorm_is_refused_off_cuda():
    with pytest.raises(TrainingError, match="needs CUDA"):
        World(rank=0, size=2).sync_batchnorm(torch.nn.BatchNorm2d(3), torch.device("cpu"))


def test_every_metric_names_all_it_accumulates():
    """``merge`` adds up ``accumulated``: an attribute ``reset`` sets and it misses would be one rank's alone."""
    from mtdsl.train.metrics.metric import METRICS

    for kind, cls in METRICS.items():
        metric = cls(3)
        configuration = {"num_outputs", "class_names", "ignore_index"}
        assert set(vars(metric)) - configuration == set(cls.accumulated), kind


@pytest.mark.parametrize("environment, message", [
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not a whole number"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "do not name one of WORLD_SIZE=2"),
    ({"WORLD_SIZE": "0"}, "do not name one of WORLD_SIZE=0"),
])
def test_a_garbled_torchrun_environment_is_refused(environment, message):
    with pytest.raises(TrainingError, match=message):
        World.from_environment(environment)


def test_a_world_reads_torchrun_and_says_how_to_relaunch():
    world = World.from_environment({"WORLD_SIZE": "8", "RANK": "5", "LOCAL_RANK": "1"})
    assert (world.rank, world.size, world.local_rank, world.is_main) == (5, 8, 1, False)
    assert world.launcher({"LOCAL_WORLD_SIZE": "4"}) == ["torchrun", "--nproc_per_node", "4", "--nnodes", "2"]
    assert world.label("error: x") == "rank 5: error: x"
    assert World().launcher() == ["python"] and World().label("x") == "x"
    assert world.device(torch.device("cuda")) == torch.device("cuda", 1)
    with pytest.raises(TrainingError, match="names one GPU"):
        world.device(torch.device("cuda:0"))


def test_a_batch_the_processes_cannot_share_evenly_is_refused_before_training():
    labels = {"shape": TaskLabels(task="shape", kind="classify", classes=("circle", "square", "triangle"),
                                label=None, positive=None, partial=False)}
    with pytest.raises(DataError, match="which 4 processes cannot share evenly") as raised:
        StreamLoaders([Stream(("shapes",), tasks=("shape",), batch_size=10)],
                      {"shapes": SyntheticDataset(kind="synthetic", name="shapes", count=64, size=32, seed=0)},
                      labels, image_size=(32, 32), mean=(0.5,) * 3, std=(0.5,) * 3, seed=0, workers=0,
                      on_corrupt="error", device=torch.device("cpu"), world=World(rank=1, size=4))
    assert "batch_size = 8" in raised.value.hint


def test_a_launch_missing_torchrun_rendezvous_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert main(["train", str(write_spec(tmp_path)), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("rank 1: ") and "MASTER_ADDR and MASTER_PORT not set" in error and "--nproc" in error
    assert not (tmp_path / "run").exists()


def test_nproc_is_refused_under_torchrun_and_dropped_from_the_command_it_starts(tmp_path, capsys, monkeypatch):
    assert _without_nproc(["train", "a.mtl", "--nproc", "2", "--quiet", "--nproc=3"]) == ["train", "a.mtl", "--quiet"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["train", str(write_spec(tmp_path)), "--nproc", "2", "--out", str(tmp_path / "run")]) == 2
    assert "--nproc starts torchrun" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_two_gpus_train_over_nccl_with_synchronised_batchnorm(tmp_path):
    spec = write_spec(tmp_path, "    epochs = 2\n    precision = bf16")
    result = subprocess.run([sys.executable, "-m", "mtdsl", "train", str(spec), "--nproc", "2", "--device", "cuda",
                             "--sync-batchnorm", "--out", str(tmp_path / "run"), "--quiet"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert [r["processes"] for r in records(tmp_path / "run", "train")] == [2, 2]
    sessions = [json.loads(line) for line in (tmp_path / "run" / "provenance.jsonl").read_text().splitlines()]
    assert sessions[0]["device"].startswith("cuda")
