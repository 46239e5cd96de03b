"""Issue 23, item 9: what a hostile probe of main found, each now a located error (or a right answer).

Each test here failed before its fix: a symbolic-link loop in a dataset, 16-bit PNGs, a run folder
whose path is not UTF-8, a checkpoint that is not a dict, code planted in the cache folder, a rank
killed by a signal, an empty class folder under ``--quiet``, ``--overwrite`` and files mtdsl did not
write, a full disk before the first checkpoint, a changed dropout, and ``compile`` on many tasks.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_training import FOLDER_SPEC, train, write_spec

from mtdsl.cli import main


def _photos(root: Path, count: int = 8) -> Path:
    for label, value in (("dark", 20), ("light", 235)):
        (root / label).mkdir(parents=True)
        for index in range(count):
            Image.new("RGB", (40, 40), (value, value, value + index)).save(root / label / f"{index}.png")
    return root


def _photo_spec(folder: Path, root: Path, body: str = "") -> Path:
    spec = folder / "photos.mtl"
    spec.write_text(FOLDER_SPEC.format(root=root, workers=0, on_corrupt="error") + body, encoding="utf-8")
    return spec


# ------------------------------------------------------------ 1. symbolic-link loops


@pytest.mark.parametrize("loop", ["dark/loop.png", "loop"])
def test_a_symbolic_link_loop_in_a_folder_dataset_is_a_data_error_naming_it(tmp_path, capsys, loop):
    """A file (or a class folder) that links to itself cannot be read; training says which and how to fix it."""
    root = _photos(tmp_path / "photos")
    os.symlink(Path(loop).name, root / loop)
    assert train(_photo_spec(tmp_path, root), tmp_path / "run") == 2
    error = capsys.readouterr().err
    assert f"data error: folder dataset 'photos' ({root}): {root / loop} is a symbolic link that loops" in error
    assert "hint: remove the link" in error and "Traceback" not in error


def test_predict_refuses_a_symbolic_link_loop_among_its_images_as_training_does(tmp_path, capsys):
    root = _photos(tmp_path / "photos")
    os.symlink("loop.png", root / "dark" / "loop.png")
    spec = _photo_spec(tmp_path, root)
    assert main(["predict", str(spec), "--checkpoint", str(tmp_path / "none.pt"), str(root / "dark"),
                 "--out", str(tmp_path / "out"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert f"{root / 'dark' / 'loop.png'} is a symbolic link that loops" in error and "hint: remove the link" in error
    assert main(["predict", str(spec), "--checkpoint", str(tmp_path / "none.pt"), str(root / "dark" / "loop.png"),
                 "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert f"{root / 'dark' / 'loop.png'} is a symbolic link that loops" in capsys.readouterr().err


# ------------------------------------------------------------------ 2. 16-bit PNGs


def _png16(path: Path) -> np.ndarray:
    """A 16-bit greyscale PNG (Pillow opens it in mode I;16) of every 16-bit level and more; returns its values."""
    values = (np.arange(64 * 64, dtype=np.int64).reshape(64, 64) * 16 + 15).clip(0, 65535).astype(np.uint16)
    Image.fromarray(values).save(path)
    with Image.open(path) as image:
        assert image.mode == "I;16"
    return values


@pytest.mark.parametrize("reader", ["training", "dense training", "predict"])
def test_a_16_bit_png_is_scaled_to_8_bit_not_clipped_at_255(tmp_path, reader):
    """``convert("RGB")`` clips 16-bit levels at 255 (99.6% of this image would be white); every reader scales."""
    from mtdsl.predict.request import read_image
    from mtdsl.train.data.decode import read_rgb
    from mtdsl.train.data.letterbox import open_rgb
    from mtdsl.train.data.transforms import as_rgb

    values = _png16(tmp_path / "deep.png")
    load = {"training": lambda path: read_rgb(path)[0], "dense training": lambda path: open_rgb(str(path), 64)[0],
            "predict": read_image}[reader]
    image = load(tmp_path / "deep.png")
    if reader == "predict":
        assert image.mode == "RGB"
    else:  # torchvision decodes the PNG as uint16; mtdsl scales it like as_rgb
        image = image.permute(1, 2, 0).numpy()
    pixels = np.asarray(image).astype(np.float64)
    for channel in range(3):
        assert np.abs(pixels[..., channel] - values / 257).max() <= 0.5
    with Image.open(tmp_path / "deep.png") as opened:  # a mode "I" image (32-bit) of the same levels reads alike
        assert np.array_equal(np.asarray(as_rgb(opened.convert("I"))), np.asarray(image))


# ------------------------------------------------------------- 4. a checkpoint that is not a dict


@pytest.mark.parametrize("command", ["eval", "export", "predict", "resume"])
def test_a_checkpoint_that_is_not_a_dict_is_refused_naming_the_file(tmp_path, capsys, command):
    """``torch.load`` reads any tensors-and-containers file; mtdsl's checkpoints are dicts."""
    spec = write_spec(tmp_path)
    bad = tmp_path / "run" / "checkpoints" / "last.pt"
    bad.parent.mkdir(parents=True)
    torch.save([torch.zeros(2), 1], bad)
    (tmp_path / "run" / "spec.mtl").write_text(spec.read_text())
    arguments = {
        "eval": ["eval", str(spec), "--checkpoint", str(bad)],
        "export": ["export", str(spec), "--checkpoint", str(bad), "--out", str(tmp_path / "export")],
        "predict": ["predict", str(spec), "--checkpoint", str(bad), str(_photos(tmp_path / "photos") / "dark"),
                    "--out", str(tmp_path / "predicted")],
        "resume": ["train", str(spec), "--out", str(tmp_path / "run"), "--resume"],
    }[command]
    assert main([*arguments, "--quiet"]) == 2
    error = capsys.readouterr().err
    assert f"training error: {bad} is not an mtdsl checkpoint: it holds a list" in error, error
    assert "Traceback" not in error


# ------------------------------------------------------------- 3. a run folder whose path is not UTF-8


def test_a_run_folder_whose_path_is_not_utf8_trains_tests_and_evaluates(tmp_path):
    """Linux paths are bytes; Python reads a non-UTF-8 byte as a lone surrogate, which torch's C++ file
    reader cannot encode, so the run trained every epoch and then could not read its own best.pt.
    Run with a strict UTF-8 stdout (PYTHONIOENCODING=utf-8, as under a non-C locale), which failed
    on printing the path too."""
    import subprocess
    import sys

    spec = write_spec(tmp_path, "    epochs = 1")
    out = os.path.join(os.fsencode(tmp_path), b"run-\xff")
    environment = {**os.environ, "PYTHONIOENCODING": "utf-8"}

    def mtdsl(*arguments: bytes | str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable.encode(), b"-m", b"mtdsl", *map(os.fsencode, arguments), b"--quiet"],
                              capture_output=True, env=environment, timeout=300)

    for arguments in (["train", spec, "--out", out],
                      ["eval", spec, "--checkpoint", os.path.join(out, b"checkpoints", b"best.pt")],
                      ["train", spec, "--out", out, "--resume"]):  # nothing left to train; the checkpoint is read
        result = mtdsl(*arguments)
        assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr.decode(errors="replace")
    assert os.path.isfile(os.path.join(out, b"test.json"))


# ------------------------------------------------------------- 9. a full disk before the first checkpoint


def _disk_full(monkeypatch) -> None:
    def disk_full(state, file):
        file.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)


def test_a_full_disk_before_the_first_checkpoint_does_not_hint_at_resuming(tmp_path, monkeypatch, capsys):
    spec = write_spec(tmp_path, "    epochs = 1")
    _disk_full(monkeypatch)
    assert train(spec, tmp_path / "run") == 2
    error = capsys.readouterr().err
    assert "cannot write checkpoint" in error and "nothing was written" in error
    assert "--resume" not in error and "--overwrite" in error
    monkeypatch.undo()
    assert train(spec, tmp_path / "run", "--overwrite") == 0  # the hint's command works


@pytest.mark.parametrize("name", ["last.pt", "best.pt"])
def test_a_full_disk_once_a_checkpoint_exists_hints_at_resuming(tmp_path, monkeypatch, name):
    from mtdsl.errors import TrainingError
    from mtdsl.train.run.checkpoint import save_checkpoint

    save_checkpoint({"weights": torch.ones(3)}, tmp_path / "checkpoints" / "last.pt")
    _disk_full(monkeypatch)
    with pytest.raises(TrainingError, match="No space left on device") as raised:
        save_checkpoint({"weights": torch.zeros(3)}, tmp_path / "checkpoints" / name)
    assert "--resume" in raised.value.hint and "--overwrite" not in raised.value.hint


# ------------------------------------------------------------- 10. a changed dropout


DROPOUT_SPEC = """
model drops
input 3x32x32
backbone trunk = timm("test_resnet", drop_rate = {rate}, drop_path_rate = {rate})
dataset shapes = synthetic(count = 64, size = 32, seed = 0)
task shape: classify(shapes) {{ classes = [circle, square, triangle]; head = mlp(16, dropout = {dropout}) }}
task colour: classify(shapes) {{ classes = [red, green, blue]; head = linear(dropout = {dropout}) }}
train {{ epochs = 1; batch_size = 16; workers = 0 }}
"""


def _dropout_spec(folder: Path, dropout: float, rate: float = 0.0) -> Path:
    spec = folder / "drops.mtl"
    spec.write_text(DROPOUT_SPEC.format(dropout=dropout, rate=rate), encoding="utf-8")
    return spec


def test_a_checkpoint_still_loads_after_its_spec_changes_only_a_dropout_rate(tmp_path, capsys):
    spec = _dropout_spec(tmp_path, 0.1)
    assert train(spec, tmp_path / "run") == 0
    best = tmp_path / "run" / "checkpoints" / "best.pt"
    _dropout_spec(tmp_path, 0.3, rate=0.2)
    capsys.readouterr()
    assert main(["eval", str(spec), "--checkpoint", str(best), "--quiet"]) == 0, capsys.readouterr().err
    assert main(["export", str(spec), "--checkpoint", str(best), "--format", "torchscript",
                 "--out", str(tmp_path / "export")]) == 0, capsys.readouterr().err
    assert main(["predict", str(spec), "--checkpoint", str(best), str(_photos(tmp_path / "photos") / "dark"),
                 "--out", str(tmp_path / "predicted"), "--quiet"]) == 0, capsys.readouterr().err
    assert train(spec, tmp_path / "run", "--resume") == 2  # resuming needs the training settings unchanged
    error = capsys.readouterr().err
    assert "the spec's training settings changed" in error and "different model" not in error


@pytest.mark.parametrize("before, after", [(0.1, 0.3), (0.0, 0.2), (0.2, 0.0)])
def test_the_model_fingerprint_changes_exactly_when_the_weights_names_or_shapes_do(tmp_path, before, after):
    """A head's dropout > 0 inserts a Dropout into its Sequential, which renumbers the layers after it;
    its value, and the backbone's rates, change no weight."""
    from mtdsl.compiler import compile_file
    from mtdsl.train.run.fingerprints import model_hash

    layouts, hashes = [], []
    for index, (dropout, rate) in enumerate(((before, before), (after, after))):
        folder = tmp_path / str(index)
        folder.mkdir()
        compilation = compile_file(_dropout_spec(folder, dropout, rate))
        layouts.append({name: tuple(t.shape) for name, t in compilation.model().state_dict().items()})
        hashes.append(model_hash(compilation.graph))
    assert (layouts[0] == layouts[1]) == (hashes[0] == hashes[1])
    assert (layouts[0] == layouts[1]) == ((before == 0) == (after == 0))


# ------------------------------------------------------------- 5. the cache folder runs no code


class _Planted:
    """Unpickling this makes the folder ``marker``: a stand-in for any code a planted file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.mark.parametrize("variable", ["MTDSL_CACHE_DIR", "XDG_CACHE_HOME"])
def test_no_file_planted_in_the_cache_folder_runs_code_under_check(tmp_path, variable):
    """lark's own cache unpickles its file (before checking its hash): mtdsl's caches are JSON, checked by key."""
    import pickle
    import subprocess
    import sys

    import lark

    spec = tmp_path / "m.mtl"
    spec.write_text("model m\ninput 3x32x32\n")  # refused (no backbone), but only once parsed
    environment = {name: value for name, value in os.environ.items() if name != "MTDSL_CACHE_DIR"}
    environment[variable] = str(tmp_path / "cache")
    folder = tmp_path / "cache" / ("mtdsl" if variable == "XDG_CACHE_HOME" else "")

    def check() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mtdsl", "check", str(spec)], capture_output=True, text=True,
                              env=environment, timeout=120)

    clean = check()
    assert "the spec declares no backbone" in clean.stderr
    marker = tmp_path / "the-payload-ran"
    payload = b"0" * 64 + b"\n" + pickle.dumps(_Planted(marker))
    written = [path for path in folder.iterdir() if path.is_file()]
    for path in {*written, folder / f"grammar-lark-{lark.__version__}.cache"}:  # what lark's cache= would read
        path.write_bytes(payload)
    planted = check()
    assert not marker.exists()
    assert (planted.returncode, planted.stderr) == (clean.returncode, clean.stderr)


# ------------------------------------------------------------- 8. --overwrite keeps files mtdsl did not write


def test_overwrite_deletes_what_a_run_wrote_and_keeps_every_other_file(tmp_path, capsys):
    from mtdsl.train.run.folder import CHECKPOINT_FILES, PLOT_FILES

    spec = write_spec(tmp_path, "    epochs = 1")
    out = tmp_path / "run"
    assert train(spec, out) == 0
    # What a run writes is listed where --overwrite reads it.
    assert {p.name for p in (out / "checkpoints").iterdir()} <= set(CHECKPOINT_FILES)
    assert {p.name for p in (out / "plots").iterdir()} <= set(PLOT_FILES)
    foreign = {name: f"not mtdsl's: {name}".encode() for name in
               ("checkpoints/teacher.pt", "plots/notes.txt", "predictions/photo.png", "predictions/README")}
    for name, data in foreign.items():
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_bytes(data)
    (out / "predictions" / "shapes.png").write_bytes(b"the old run's drawing of its dataset 'shapes'")
    (out / "checkpoints" / ".last.pt.4242.tmp").write_bytes(b"a write a kill cut short")
    old_best = (out / "checkpoints" / "best.pt").read_bytes()

    assert train(spec, out, "--overwrite", "--seed", "5") == 0, capsys.readouterr().err
    for name, data in foreign.items():
        assert (out / name).read_bytes() == data, name
    assert not (out / "predictions" / "shapes.png").exists()
    assert not (out / "checkpoints" / ".last.pt.4242.tmp").exists()
    assert (out / "checkpoints" / "best.pt").read_bytes() != old_best


# ------------------------------------------------------------- 7. an empty class folder under --quiet


def test_an_empty_class_folder_is_a_warning_even_under_quiet(tmp_path, capsys):
    """The class is never the answer, so accuracy can read 1.0: --quiet drops progress and tables, not this."""
    import shutil

    root = _photos(tmp_path / "photos", count=16)
    shutil.rmtree(root / "light")
    (root / "light").mkdir()
    assert train(_photo_spec(tmp_path, root), tmp_path / "run") == 0  # --quiet (see test_training.train)
    error = capsys.readouterr().err
    assert f"warning: folder dataset 'photos' ({root}): the class folder {root / 'light'} holds no images" in error


# ------------------------------------------------------------- 11. compile on many tasks


def _flops_by_forward_per_task(graph) -> dict[str, int]:
    """The FLOPs as counted before: one forward pass per task, and one of all of them."""
    from torch.utils.flop_counter import FlopCounterMode

    from mtdsl.nn.model import MultiTaskModel

    with torch.device("meta"):
        model = MultiTaskModel(graph).eval()
        image = torch.empty(1, *graph.graph["input"])
    flops = {}
    for tasks in [[task] for task in graph.graph["tasks"]] + [None]:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(image, tasks=tasks)
        flops[tasks[0] if tasks else "all"] = int(counter.get_total_flops())
    return flops


def test_each_task_s_flops_from_one_forward_pass_equal_its_own_forward_pass():
    """Branches, taps, a BiFPN neck, detect and segment heads (specs/quickstart.mtl)."""
    from conftest import ROOT

    from mtdsl.compiler import compile_file
    from mtdsl.nn.cost import count_flops

    graph = compile_file(ROOT / "specs" / "quickstart.mtl").graph
    assert count_flops(graph) == _flops_by_forward_per_task(graph)


def test_the_cost_summary_runs_one_forward_pass_however_many_tasks(monkeypatch):
    """It ran one per task, each through a whole backbone: 187 s for 2,000 tasks (benchmarks/many_tasks.py)."""
    import sys

    from mtdsl.compiler import compile_text
    from mtdsl.nn.model import MultiTaskModel
    from mtdsl.render.summary import summarize

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from many_tasks import many_tasks_spec

    forward = MultiTaskModel.forward
    calls = []
    monkeypatch.setattr(MultiTaskModel, "forward", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k))
    for count in (3, 12):
        calls.clear()
        summary = summarize(compile_text(many_tasks_spec(count), "many.mtl").graph)
        assert len(summary["tasks"]) == count and len(calls) == 1


# ------------------------------------------------------------- 6. a rank killed by a signal


def test_a_rank_killed_by_a_signal_is_named_with_its_signal_not_sent_to_a_message_above():
    from mtdsl.train.parallel.failures import failure_line

    assert failure_line(1, -9, 2) == (
        "process 1 of 2 was killed by SIGKILL (signal 9), so it printed no message of its own", 137)
    assert failure_line(3, -15, 4)[1] == 128 + 15 and "SIGTERM" in failure_line(3, -15, 4)[0]
    assert failure_line(0, 2, 2) == ("process 0 of 2 stopped with exit status 2 (its message is above)", 2)


def test_a_rank_that_loses_its_peer_stops_with_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    import mtdsl.cli

    def broken_collective(args, console):
        raise RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:691: "
                           "Connection reset by peer. This is typically caused by a remote worker hanging")

    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(mtdsl.cli, "cmd_train", broken_collective)
    assert main(["train", str(write_spec(tmp_path)), "--out", str(tmp_path / "run")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("process 0 of 2 stopped: lost contact with another process of the run")
    monkeypatch.setenv("WORLD_SIZE", "1")  # in one process the same error is a bug, and shows its traceback
    with pytest.raises(RuntimeError, match="Connection reset by peer"):
        main(["train", str(write_spec(tmp_path)), "--out", str(tmp_path / "run")])


def _rank_process(launcher: int, rank: int) -> int | None:
    """The pid of torchrun's worker ``rank`` under the launcher process ``launcher``."""
    import subprocess

    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(launcher)], capture_output=True, text=True).stdout
    for pid in map(int, children.split()):
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"LOCAL_RANK={rank}".encode() in environment:
            return pid
        below = _rank_process(pid, rank)
        if below is not None:
            return below
    return None


@pytest.mark.slow
def test_sigkill_of_one_rank_under_nproc_is_one_line_naming_the_rank_and_the_signal(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from test_training import records

    spec = write_spec(tmp_path, "    epochs = 30", count=960)
    out = tmp_path / "run"
    job = subprocess.Popen([sys.executable, "-m", "mtdsl", "train", str(spec), "--nproc", "2", "--out", str(out),
                            "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 400
        while not records(out, "train") if (out / "metrics.jsonl").exists() else True:
            assert job.poll() is None and time.monotonic() < deadline, "the run ended before a rank could be killed"
            time.sleep(0.1)
        victim = _rank_process(job.pid, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        _, stderr = job.communicate(timeout=180)
    finally:
        job.kill()
    assert job.returncode == 128 + signal.SIGKILL, stderr
    assert "process 1 of 2 was killed by SIGKILL (signal 9), so it printed no message of its own" in stderr
    assert "Traceback" not in stderr and "its message is above" not in stderr
