"""Training end to end on tiny backbones and synthetic data, on CPU.

Each run trains test_resnet on 32-pixel synthetic shapes for a few epochs, so
the whole file runs in well under a minute.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import same_threads

from mtdsl.cli import main
from mtdsl.errors import TrainingError
from mtdsl.train.loop.runtime import load_generated, stop_on_non_finite
from mtdsl.train.run.report import MetricsLog

TINY = """
model tiny
input 3x32x32
backbone trunk = timm("test_resnet")
dataset shapes = synthetic(count = {count}, size = 32, seed = 0)
task shape: classify(shapes) {{ classes = [circle, square, triangle] }}
task colour: classify(shapes) {{ classes = [red, green, blue]; branch = trunk.stage3 }}
task large: binary(shapes) {{ tap = trunk.stage3 }}
train {{
    batch_size = 16
    optimizer = adamw(lr = 0.003)
    schedule = constant
    workers = 0
{train}
}}
"""


def write_spec(folder: Path, train: str = "    epochs = 2", count: int = 96, name: str = "tiny.mtl") -> Path:
    path = folder / name
    path.write_text(TINY.format(count=count, train=train), encoding="utf-8")
    return path


def train(spec: Path, out: Path, *extra: str) -> int:
    return main(["train", str(spec), "--out", str(out), "--quiet", *extra])


def records(out: Path, event: str) -> list[dict]:
    return [r for r in MetricsLog.read(out / "metrics.jsonl") if r["event"] == event]


def test_run_folder_holds_everything_promised(tmp_path):
    spec = write_spec(tmp_path)
    assert train(spec, tmp_path / "run") == 0
    run = tmp_path / "run"
    for name in ("model.py", "train.py", "spec.mtl", "spec.json", "provenance.jsonl", "graph.json", "summary.json",
                 "metrics.jsonl",
                 "checkpoints/last.pt", "checkpoints/best.pt", "test.json", "test.md",
                 "plots/losses.png", "plots/metrics.png", "plots/sampling.png", "plots/gradients.png"):
        assert (run / name).is_file(), name
    train_records = records(run, "train")
    assert [r["epoch"] for r in train_records] == [1, 2]
    assert set(train_records[0]["losses"]) == {"shape", "colour", "large"}
    assert set(train_records[0]["ratios"]) == {"shape+colour", "large"}
    test = json.loads((run / "test.json").read_text())
    assert set(test["metrics"]) == {"shape", "colour", "large"}
    resolved = json.loads((run / "spec.json").read_text())  # the spec as validated, defaults explicit
    assert list(resolved["model"]["tasks"]) == ["shape", "colour", "large"] and resolved["train"]["seed"] == 0
    # model.safetensors: the best checkpoint's weights alone, tensor for tensor, and where they came from
    from safetensors import safe_open

    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    with safe_open(str(run / "model.safetensors"), "pt") as weights:
        assert sorted(weights.keys()) == sorted(best["model"])
        assert all(torch.equal(weights.get_tensor(name), tensor) for name, tensor in best["model"].items())
        assert weights.metadata()["epoch"] == str(best["state"]["epoch"])
        assert weights.metadata()["model_hash"] == best["model_hash"]


def test_loss_falls_and_accuracy_beats_chance(tmp_path):
    spec = write_spec(tmp_path, "    epochs = 6", count=240)
    assert train(spec, tmp_path / "run") == 0
    losses = [r["losses"] for r in records(tmp_path / "run", "train")]
    for task in ("shape", "colour", "large"):
        assert losses[-1][task] < losses[0][task], task
    best = max(records(tmp_path / "run", "val"), key=lambda r: r["mean"])
    assert best["main"]["colour"] > 0.6  # chance: 1/3
    assert best["mean"] > 0.5


def test_same_seed_gives_identical_runs_and_another_seed_does_not(tmp_path):
    spec = write_spec(tmp_path)
    for out, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert train(spec, tmp_path / out, "--seed", seed) == 0
    a, b, c = (records(tmp_path / out, "train") for out in "abc")
    assert [r["losses"] for r in a] == [r["losses"] for r in b]
    assert [r["losses"] for r in a] != [r["losses"] for r in c]
    assert records(tmp_path / "a", "val") == records(tmp_path / "b", "val")


def test_resume_continues_to_the_same_result(tmp_path):
    whole = randomised(write_spec(tmp_path,
                                  "    phase heads { epochs = 1; freeze = [shared] }\n    phase all { epochs = 2 }"))
    assert train(whole, tmp_path / "whole") == 0

    stopped = tmp_path / "stopped"
    assert train(whole, stopped) == 0
    last = torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)
    # Roll the run back to its first epoch, as if it had been killed during the second.
    first = _rerun_until(whole, tmp_path / "first", epochs=1)
    (stopped / "checkpoints" / "last.pt").write_bytes((first / "checkpoints" / "last.pt").read_bytes())
    MetricsLog(stopped / "metrics.jsonl").truncate_after(1)
    assert train(whole, stopped, "--resume") == 0

    assert records(stopped, "train") == _without_time(records(tmp_path / "whole", "train"), records(stopped, "train"))
    assert records(stopped, "val") == records(tmp_path / "whole", "val")
    resumed = torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)
    for key, value in last["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    # Each training session of the run says how it ran: the start, then the resume.
    sessions = [json.loads(line) for line in (stopped / "provenance.jsonl").read_text().splitlines()]
    assert [s["event"] for s in sessions] == ["start", "resume"]
    assert all(s["seed"] == 0 and s["world_size"] == 1 and s["device"] == "cpu" for s in sessions)
    assert sessions[0]["packages"]["torch"] == torch.__version__.split("+")[0]  # the distribution, no local tag
    assert sessions[0]["git"] is None or len(sessions[0]["git"]["commit"]) == 40


def _rerun_until(spec: Path, out: Path, epochs: int) -> Path:
    """Train ``spec`` but stop after ``epochs`` epochs, as a killed run would."""
    assert main(["compile", str(spec), "--out", str(out)]) == 0
    loop = load_generated(out / "train.py")
    loop.PHASES[:] = loop.PHASES[:epochs]  # the first phase is one epoch long
    loop.EPOCHS = sum(p.epochs for p in loop.PHASES)
    loop.train(out, quiet=True)
    return out


def _without_time(expected: list[dict], actual: list[dict]) -> list[dict]:
    """``expected`` with the wall-clock fields taken from ``actual`` (time is the one thing allowed to differ)."""
    return [{**e, **{key: a[key] for key in ("seconds", "val_seconds") if key in a}} for e, a in zip(expected, actual)]


def test_resume_refuses_a_changed_spec(tmp_path, capsys):
    spec = write_spec(tmp_path)
    assert train(spec, tmp_path / "run") == 0
    trained_loop = (tmp_path / "run" / "train.py").read_text()
    changed = write_spec(tmp_path, "    epochs = 2\n    seed = 5")
    assert train(changed, tmp_path / "run", "--resume") == 2
    assert "training settings changed" in capsys.readouterr().err
    assert (tmp_path / "run" / "train.py").read_text() == trained_loop  # the run's own loop is kept


def test_an_existing_run_is_not_overwritten_by_accident(tmp_path, capsys):
    spec = write_spec(tmp_path)
    assert train(spec, tmp_path / "run") == 0
    before = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()
    assert train(spec, tmp_path / "run") == 2
    assert "--resume" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes() == before


def test_generated_train_py_and_mtdsl_train_are_the_same_loop(tmp_path):
    spec = write_spec(tmp_path)
    assert train(spec, tmp_path / "cli") == 0
    assert main(["compile", str(spec), "--out", str(tmp_path / "build")]) == 0
    script = subprocess.run(
        [sys.executable, str(tmp_path / "build" / "train.py"), "--out", str(tmp_path / "script"), "--quiet"],
        capture_output=True, text=True, timeout=300, env=same_threads(),
    )
    assert script.returncode == 0, script.stderr
    cli, direct = records(tmp_path / "cli", "train"), records(tmp_path / "script", "train")
    assert [r["losses"] for r in cli] == [r["losses"] for r in direct]
    assert records(tmp_path / "cli", "val") == records(tmp_path / "script", "val")


def test_eval_reads_a_checkpoint_and_rejects_another_spec(tmp_path, capsys):
    spec = write_spec(tmp_path)
    assert train(spec, tmp_path / "run") == 0
    best = tmp_path / "run" / "checkpoints" / "best.pt"
    assert main(["eval", str(spec), "--checkpoint", str(best), "--split", "val"]) == 0
    assert "colour" in capsys.readouterr().out

    other = tmp_path / "other.mtl"
    other.write_text(spec.read_text().replace("branch = trunk.stage3", "branch = trunk.stage2"))
    assert main(["eval", str(other), "--checkpoint", str(best)]) == 2
    assert "different model" in capsys.readouterr().err


def test_non_finite_loss_stops_with_a_clear_message(tmp_path):
    with pytest.raises(TrainingError, match="loss of task 'b' became nan at epoch 3") as caught:
        stop_on_non_finite({"a": 1.0, "b": float("nan")}, epoch=3, step=40,
                           checkpoint=tmp_path / "last.pt")
    assert "grad_clip" in caught.value.render()


FOLDER_SPEC = """
model photos
input 3x32x32
backbone trunk = timm("test_resnet")
dataset photos = folder("{root}", split = 0.5/0.5, seed = 0)
task kind: classify(photos) {{ classes = [dark, light] }}
train {{ epochs = 1; batch_size = 8; workers = {workers}; on_corrupt = {on_corrupt} }}
"""


def _photo_folder(root: Path) -> Path:
    from PIL import Image

    for label, value in (("dark", 20), ("light", 235)):
        (root / label).mkdir(parents=True)
        for index in range(8):
            Image.new("RGB", (40, 40), (value, value, value + index)).save(root / label / f"{index}.png")
    (root / "light" / "broken.jpg").write_bytes(b"not a jpeg at all")
    return root


def test_a_corrupt_image_stops_training_with_its_name_even_from_a_worker(tmp_path, capsys):
    root = _photo_folder(tmp_path / "photos")
    spec = tmp_path / "photos.mtl"
    spec.write_text(FOLDER_SPEC.format(root=root, workers=1, on_corrupt="error"))
    assert train(spec, tmp_path / "run") == 2
    error = capsys.readouterr().err
    assert "broken.jpg" in error and "on_corrupt = skip" in error
    assert "Traceback" not in error


def test_corrupt_images_are_skipped_and_counted_when_asked(tmp_path):
    root = _photo_folder(tmp_path / "photos")
    spec = tmp_path / "photos.mtl"
    spec.write_text(FOLDER_SPEC.format(root=root, workers=0, on_corrupt="skip"))
    assert train(spec, tmp_path / "run") == 0
    (epoch,) = records(tmp_path / "run", "train")
    assert epoch["skipped_images"] >= 1


def test_a_batch_left_with_one_readable_image_is_passed_over(tmp_path):
    """Batches of 4 from a folder that is mostly broken files: some keep one image, which BatchNorm
    cannot normalise at 1×1 features; they are passed over like empty ones."""
    root = _photo_folder(tmp_path / "photos")
    for label in ("dark", "light"):
        for index in range(12):
            (root / label / f"broken{index}.jpg").write_bytes(b"not a jpeg at all")
    spec = tmp_path / "photos.mtl"
    spec.write_text(FOLDER_SPEC.format(root=root, workers=0, on_corrupt="skip")
                    .replace("epochs = 1; batch_size = 8", "epochs = 3; batch_size = 4"))
    assert train(spec, tmp_path / "run") == 0
    assert records(tmp_path / "run", "train")[-1]["skipped_images"] > 0


def test_uncertainty_weights_are_learned_in_a_run(tmp_path):
    spec = write_spec(tmp_path, "    epochs = 2\n    weighting = uncertainty")
    assert train(spec, tmp_path / "run") == 0
    epochs = records(tmp_path / "run", "train")
    assert epochs[0]["loss_weights"] != epochs[-1]["loss_weights"]
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["weighting"]
    log_variances = {key: value.item() for key, value in state.items() if key.startswith("log_variance")}
    assert len(log_variances) == 3 and all(value != 0.0 for value in log_variances.values())


def test_bf16_autocast_with_clipping_and_warmup_runs_on_cpu(tmp_path):
    spec = write_spec(tmp_path, "    epochs = 2\n    precision = bf16\n    channels_last = true\n"
                                "    grad_clip = 0.5\n    warmup = 2")
    assert train(spec, tmp_path / "run") == 0
    first, second = records(tmp_path / "run", "train")
    assert all(torch.isfinite(torch.tensor(v)) for v in first["losses"].values())
    assert first["lr"] == pytest.approx(0.003 / 2)  # half-way through the 2-epoch warm-up
    assert second["lr"] == pytest.approx(0.003)


def test_fp16_on_cpu_is_refused_with_a_fix(tmp_path, capsys):
    spec = write_spec(tmp_path, "    epochs = 1\n    precision = fp16")
    assert train(spec, tmp_path / "run", "--device", "cpu") == 2
    assert "precision = auto" in capsys.readouterr().err


@pytest.mark.slow
def test_torch_compile_trains(tmp_path):
    spec = write_spec(tmp_path, "    epochs = 1\n    compile = true")
    assert train(spec, tmp_path / "run") == 0
    (epoch,) = records(tmp_path / "run", "train")
    assert all(torch.isfinite(torch.tensor(v)) for v in epoch["losses"].values())


def randomised(spec: Path) -> Path:
    """``spec`` with every source of randomness the model itself has: drop-path and dropout in the
    backbone, dropout in a head, and learned uncertainty weights."""
    text = spec.read_text(encoding="utf-8")
    text = text.replace('timm("test_resnet")', 'timm("test_resnet", drop_rate = 0.2, drop_path_rate = 0.2)')
    text = text.replace("classes = [circle, square, triangle] }", "classes = [circle, square, triangle]; "
                        "head = mlp(16, dropout = 0.3) }")
    text = text.replace("    workers = 0", "    workers = 0\n    weighting = uncertainty")
    assert text.count("dropout") == 1 and "drop_path_rate" in text and "uncertainty" in text
    spec.write_text(text, encoding="utf-8")
    return spec


def test_a_killed_run_resumes_to_the_same_result(tmp_path):
    import os
    import signal
    import time

    spec = randomised(write_spec(tmp_path, "    epochs = 4"))
    assert train(spec, tmp_path / "whole") == 0

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "mtdsl", "train", str(spec), "--out", str(killed), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=same_threads(),
    )
    deadline = time.monotonic() + 240
    while len(records(killed, "val")) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    if len(records(killed, "test")):
        pytest.skip("the run finished before it could be killed")

    assert train(spec, killed, "--resume") == 0
    assert ([r["losses"] for r in records(killed, "train")]
            == [r["losses"] for r in records(tmp_path / "whole", "train")])
    assert records(killed, "val") == records(tmp_path / "whole", "val")
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)["model"]
    resumed = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(whole[key], resumed[key]) for key in whole)


def test_eval_needs_no_pretrained_weights_because_the_checkpoint_replaces_them(tmp_path, capsys):
    spec = write_spec(tmp_path)
    assert train(spec, tmp_path / "run") == 0
    imagenet = tmp_path / "imagenet.mtl"
    imagenet.write_text(spec.read_text().replace('timm("test_resnet")', 'timm("test_resnet", pretrained = imagenet)'))
    best = tmp_path / "run" / "checkpoints" / "best.pt"
    assert main(["eval", str(imagenet), "--checkpoint", str(best)]) == 0
    assert "test split" in capsys.readouterr().out


@pytest.mark.parametrize("epoch, passes", [("passes", 1.0), ("weighted", 0.5)])
def test_an_epoch_shows_each_task_its_data_once_by_default_and_half_as_much_by_the_thesis_formula(
        tmp_path, capsys, epoch, passes):
    spec = write_spec(tmp_path, f"    epochs = 1\n    epoch = {epoch}")
    assert main(["train", str(spec), "--out", str(tmp_path / "run")]) == 0
    (record,) = records(tmp_path / "run", "train")
    train_images = 67  # 70% of 96
    for task in ("shape", "colour", "large"):  # two streams on one dataset: shape+colour, and balanced large
        assert record["images"][task] == pytest.approx(passes * train_images, abs=16)
    assert f"an epoch ({'one pass over every stream' if epoch == 'passes' else 'Σ|X|·α/B'}" in capsys.readouterr().out
