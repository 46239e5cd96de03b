"""What the CLI writes when its output goes to a file or a pipe, and the exit statuses it ends with.

Off a terminal every line must stand alone in a log: no escape codes, no line broken at 80
columns, no text cut short with '…', one progress line every few steps. Every command takes
``--quiet`` and ``--verbose``; ``eval --out`` writes its report; the exit status says what
happened (0 done, 1 a run failed, 2 a user error, 128 + N a stop signal; README "Exit statuses").
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from mtdsl import console as consoles
from mtdsl.cli import main, parser

SPEC = """
model tiny_with_a_rather_long_name
input 3x32x32
backbone trunk = timm("test_resnet")
dataset shapes = synthetic(count = 96, size = 32, seed = 0)
task shape_of_the_object: classify(shapes) { classes = [circle, square, triangle]; label = shape }
task colour_of_the_object: classify(shapes) { classes = [red, green, blue]; branch = trunk.stage3; label = colour }
task large_or_not_large: binary(shapes) { tap = trunk.stage3; label = large }
train {
    batch_size = 16
    optimizer = adamw(lr = 0.003)
    schedule = constant
    workers = 0
    epochs = 2
}
"""


def assert_plain(text: str) -> None:
    """No escape codes and no '…' anywhere."""
    assert "\x1b" not in text, text
    assert "…" not in text, text


@pytest.fixture(autouse=True)
def normal_verbosity():
    yield
    consoles.set_verbosity(consoles.NORMAL)  # main() sets it for the process; leave it as found


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, str]:
    """A spec with long task names trained for two epochs through ``main``, stdout captured: (spec, run, stdout)."""
    folder = tmp_path_factory.mktemp("plain")
    spec = folder / "tiny.mtl"
    spec.write_text(SPEC, encoding="utf-8")
    stdout, saved = _Capture(), sys.stdout
    sys.stdout = stdout
    try:
        code = main(["train", str(spec), "--out", str(folder / "run")])
    finally:
        sys.stdout = saved
        consoles.set_verbosity(consoles.NORMAL)
    assert code == 0
    return spec, folder / "run", stdout.getvalue()


class _Capture:
    """A stdout that is a file, not a terminal (pytest's own capture is swapped out by capsys)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        return "".join(self.parts)


def test_training_off_a_terminal_writes_whole_plain_lines(trained):
    _, run, out = trained
    assert_plain(out)
    lines = out.splitlines()
    epochs = [line for line in lines if re.fullmatch(r"epoch \d/2 · train: shape_of_the_object \d\.\d{3}  "
                                                     r"colour_of_the_object \d\.\d{3}  large_or_not_large \d\.\d{3}"
                                                     r"  · mean \d\.\d{3}", line)]
    assert len(epochs) == 2, out  # each epoch's summary on one line, longer than 80 columns
    assert all(len(line) > 80 for line in epochs)
    steps = [line for line in lines if " · train: step " in line]
    # 8 steps an epoch: a line for every step (ceil(8 / 10) = 1), each whole: step, time, losses, ratios
    assert len(steps) == 16
    assert all(re.fullmatch(r"epoch \d/2 · train: step \d/8 · \d+:\d\d:\d\d · loss shape_of_the_object \d\.\d{3} "
                            r"colour_of_the_object \d\.\d{3}( large_or_not_large \d\.\d{3})? │ ratios "
                            r"\d\.\d\d \d\.\d\d", line) for line in steps), steps
    table = [line for line in lines if line.startswith("│ large_or_not_large")]
    assert table and "recall" in table[0]  # the table's row is not wrapped onto a second line
    assert f"  {run / 'test.json'}" in lines


def test_progress_lines_are_spread_over_a_long_epoch_and_every_step_under_verbose():
    from mtdsl.train.loop.progress import EpochProgress

    def lines(verbosity: int) -> list[str]:
        consoles.set_verbosity(verbosity)
        console = consoles.make_console(file=_Capture())  # type: ignore[arg-type]
        with EpochProgress("epoch 1/1 · all", 95, ["a"], console=console) as bar:
            for _ in range(95):
                bar.advance(0, {"a": 1.0})
        return console.file.getvalue().splitlines()  # type: ignore[attr-defined]

    normal = lines(consoles.NORMAL)
    assert [line.split(" · ")[1] for line in normal] == [f"all: step {n}/95" for n in (*range(10, 95, 10), 95)]
    assert len(lines(consoles.VERBOSE)) == 95


def test_compile_and_check_off_a_terminal_are_plain_and_a_quiet_check_of_a_good_spec_is_silent(tmp_path):
    spec = ROOT / "specs" / "quickstart.mtl"
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "MTDSL_CACHE_DIR": str(tmp_path / "cache")}
    compiled = subprocess.run([sys.executable, "-m", "mtdsl", "compile", str(spec), "--out", str(tmp_path / "out")],
                              capture_output=True, text=True, env=env, timeout=300)
    assert compiled.returncode == 0, compiled.stderr
    assert_plain(compiled.stdout + compiled.stderr)
    assert f"compiled {spec} → {tmp_path / 'out'}/" in compiled.stdout.splitlines()
    quiet = subprocess.run([sys.executable, "-m", "mtdsl", "check", str(spec), "--quiet"], capture_output=True,
                           text=True, env=env, timeout=300)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")


def test_an_unknown_key_lists_every_valid_key_and_every_unknown_one(tmp_path, capsys):
    spec = tmp_path / "keys.mtl"
    spec.write_text('model m\nbackbone trunk = timm("test_resnet")\ndataset d = synthetic()\n'
                    "task a: classify(d) { classes = 3; brnach = trunk.stage3 }\n"
                    "train { epochz = 2; lrr = 1 }\n", encoding="utf-8")
    assert main(["check", str(spec)]) == 2
    error = capsys.readouterr().err
    assert_plain(error)
    assert "expected: one of: augment, backbone, balanced, batch_size, branch, classes, crops, head, input, label, " \
           "loss, positive, tap, target, weight" in error
    spec.write_text(spec.read_text().replace("brnach", "branch"), encoding="utf-8")
    assert main(["check", str(spec)]) == 2
    error = capsys.readouterr().err
    assert "unknown keys 'epochz', 'lrr' for train" in error and "workers" in error and "more)" not in error


@pytest.mark.parametrize(
    "command", ["backbones", "check", "compile", "render", "train", "eval", "compare", "predict", "export"]
)
def test_every_command_takes_quiet_and_verbose(command, capsys):
    extra = {"eval": ["--checkpoint", "c.pt"], "predict": ["--checkpoint", "c.pt", "x.png"],
             "export": ["--checkpoint", "c.pt"]}.get(command, [])
    for flag in ("--quiet", "--verbose"):
        args = parser().parse_args([command, "s.mtl", *extra, flag])
        assert (args.quiet, args.verbose) == (flag == "--quiet", flag == "--verbose")
    with pytest.raises(SystemExit) as exited:
        parser().parse_args([command, "s.mtl", *extra, "--quiet", "--verbose"])
    assert exited.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_eval_out_writes_the_report(trained, tmp_path, capsys):
    spec, run, _ = trained
    report = tmp_path / "report"
    assert main(["eval", str(spec), "--checkpoint", str(run / "checkpoints" / "best.pt"), "--split", "val",
                 "--out", str(report)]) == 0
    out = capsys.readouterr().out
    assert_plain(out)
    assert {p.name for p in report.iterdir()} == {"val.json", "val.md"}
    written = json.loads((report / "val.json").read_text())
    assert set(written["main"]) == {"shape_of_the_object", "colour_of_the_object", "large_or_not_large"}
    best = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["event"] == "val"]
    top = max(best, key=lambda record: record["mean"])  # the val record of the best epoch, again
    assert written["mean"] == pytest.approx(top["mean"])
    assert f"  {report / 'val.json'}" in out.splitlines()
    assert main(["eval", str(spec), "--checkpoint", str(run / "checkpoints" / "best.pt"), "--quiet"]) == 0
    assert capsys.readouterr().out == ""


def test_exit_statuses_one_for_a_failed_run_two_for_a_user_error(trained, tmp_path, monkeypatch, capsys):
    spec, _, _ = trained
    assert main(["check", str(tmp_path / "missing.mtl")]) == 2
    from mtdsl.nn import losses

    original = losses.build_loss

    def poisoned(*args, **kwargs):  # every loss NaN: the loop's own non-finite check stops the run
        loss = original(*args, **kwargs)
        return lambda *inputs: loss(*inputs) * float("nan")

    monkeypatch.setattr(losses, "build_loss", poisoned)  # train.py imports it when the run loads it
    assert main(["train", str(spec), "--out", str(tmp_path / "nan"), "--quiet"]) == 1
    error = capsys.readouterr().err
    assert "training error: the loss of task" in error and "Traceback" not in error
