"""``mtdsl compare``: single-task counterparts derived from a spec, and their size and speed measured beside it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import SPECS, tiny_backbones
from test_training import records

from mtdsl.cli import main
from mtdsl.compare import MULTI, compare
from mtdsl.compare.single_task import single_task_specs
from mtdsl.compiler import compile_file, compile_text
from mtdsl.graph.build import build_graph
from mtdsl.nn.cost import count_flops
from mtdsl.nn.parameters import count_parameters
from mtdsl.render.summary import summarize

SPEC = """
model four
input 3x64x64
backbone trunk = timm("test_efficientnet")
neck pyramid = bifpn(trunk, channels = 32, repeats = 1, max_level = 5)
dataset shapes = synthetic(count = 96, size = 64, seed = 0)
task shape: classify(shapes) { classes = [circle, square, triangle] }
task colour: classify(shapes) { classes = [red, green, blue]; branch = trunk.stage3 }
task large: binary(shapes) { branch = colour.stage4; label = large }
task objects: detect(shapes) { classes = [circle, square, triangle] }
train {
    sampling = fixed(shape = 0.4, colour = 0.4, large = 0.2, objects = 0.4)
    phase heads { epochs = 1; freeze = [shared] }
    phase all { epochs = 1; freeze = [colour.head] }
}
"""


def counterpart(node: str) -> str:
    """The single-task graph's node for a multi-task node: a private copy becomes the backbone's own segment."""
    return node.partition("/")[2] if "/" in node else node


@pytest.mark.parametrize("path", [None, *SPECS], ids=lambda p: "four" if p is None else p.stem)
def test_each_single_task_model_is_its_task_path_with_the_same_frozen_parts(path):
    spec = compile_text(SPEC).spec if path is None else tiny_backbones(compile_file(path).spec)
    graph = count_parameters(build_graph(spec))
    summary = summarize(graph, with_flops=False)
    flops = count_flops(graph)
    for task, single in single_task_specs(spec, graph).items():
        alone = count_parameters(build_graph(single))
        assert list(alone.graph["tasks"]) == [task] and not single.model.tasks[task].branch
        assert sum(d["params"] for _, d in alone.nodes(data=True)) == summary["tasks"][task]["path_params"]
        assert count_flops(alone)["all"] == flops[task]
        for node in graph.graph["tasks"][task]:
            assert alone.nodes[counterpart(node)]["frozen_in"] == graph.nodes[node]["frozen_in"], node


def test_each_single_task_model_trains_each_part_at_its_multi_task_rate():
    """``lr_scale`` words of the multi-task spec (``shared``, another task's head) are written out per part."""
    from mtdsl.train.loop.freezing import phases_of

    spec = compile_text('''model demo
backbone trunk = timm("test_resnet")
dataset d = synthetic()
task a: classify(d) { classes = 2 }
task b: classify(d) { classes = 3; branch = trunk.stage3 }
train {
    lr_scale = scale(shared = 0.1, b.head = 3)
    phase one { epochs = 1 }
    phase two { epochs = 1; lr_scale = scale(trunk.stage4 = 0.5) }
}''').spec
    graph = build_graph(spec)
    multi = {phase.name: dict(phase.lr_scales) for phase in phases_of(graph, spec.train, spec.model)}
    for task, single in single_task_specs(spec, graph).items():
        alone = build_graph(single)  # every part it names exists in the single-task model
        for phase in phases_of(alone, single.train, single.model):
            path = {graph.nodes[node]["module"] for node in graph.graph["tasks"][task]}
            expected = sorted(factor for module, factor in multi[phase.name].items() if module in path)
            assert sorted(dict(phase.lr_scales).values()) == expected, (task, phase.name)
    b = single_task_specs(spec, graph)["b"]
    one, two = (dict(phase.lr_scales) for phase in phases_of(build_graph(b), b.train, b.model))
    assert one["heads.b"] == two["heads.b"] == 3.0 and one["backbone.trunk.stem"] == 0.1
    assert "backbone.trunk.stage4" not in one and two["backbone.trunk.stage4"] == 0.5  # its copy in the multi-task one


def test_compare_measures_every_model_and_sums_the_single_ones():
    spec = compile_text(SPEC).spec
    result = compare(spec, device=torch.device("cpu"), batch_sizes=[1, 2], runs=2)
    rows = result["rows"]
    assert list(rows) == [MULTI, "shape", "colour", "large", "objects", "single-task total"]
    single = [rows[task] for task in result["tasks"]]
    assert rows["single-task total"]["params"] == sum(row["params"] for row in single) > rows[MULTI]["params"]
    for row in rows.values():
        assert row["macs"] * 2 == row["flops"] > 0
        assert set(row["latency_ms"]) == {1, 2} and all(ms > 0 for ms in row["latency_ms"].values())
        assert row["peak_memory_bytes"] > 0
    assert rows["single-task total"]["latency_ms"][2] == pytest.approx(sum(r["latency_ms"][2] for r in single))


def test_the_compare_command_writes_json_markdown_and_a_chart(tmp_path, capsys):
    spec = tmp_path / "four.mtl"
    spec.write_text(SPEC)
    assert main(["compare", str(spec), "--out", str(tmp_path / "out"), "--runs", "2", "--batch-sizes", "1,2"]) == 0
    printed = capsys.readouterr().out
    assert "single / multi" in printed and "MACs" in printed
    result = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert result["batch_sizes"] == [1, 2] and result["runs"] == 2
    assert "| single: objects |" in (tmp_path / "out" / "compare.md").read_text()
    assert (tmp_path / "out" / "compare.png").stat().st_size > 10_000


@pytest.mark.parametrize("arguments", [["--batch-sizes", "1,0"], ["--batch-sizes", "x"], ["--runs", "0"]])
def test_bad_compare_options_are_refused(tmp_path, capsys, arguments):
    spec = tmp_path / "four.mtl"
    spec.write_text(SPEC)
    with pytest.raises(SystemExit) as exited:
        main(["compare", str(spec), "--out", str(tmp_path / "out"), *arguments])
    assert exited.value.code == 2 and not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_compare_runs_on_every_shipped_spec(path):
    spec = tiny_backbones(compile_file(path).spec)
    result = compare(spec, device=torch.device("cpu"), batch_sizes=[1], runs=1)
    assert set(result["rows"]) == {MULTI, *spec.model.tasks, "single-task total"}


def test_an_output_folder_that_cannot_be_made_is_refused_before_timing(tmp_path, capsys):
    spec = tmp_path / "four.mtl"
    spec.write_text(SPEC)
    (tmp_path / "file").write_text("")
    assert main(["compare", str(spec), "--out", str(tmp_path / "file")]) == 2
    assert "cannot create output folder" in capsys.readouterr().err


TRAINED = """
model pair
input 3x32x32
backbone trunk = timm("test_efficientnet")
dataset shapes = synthetic(count = 60, size = 32, seed = 0)
dataset more = synthetic(count = 40, size = 32, seed = 1)
task shape: classify(shapes) { classes = [circle, square, triangle] }
task colour: classify(more) { classes = [red, green, blue]; branch = trunk.stage3 }
train {
    batch_size = 8
    sampling = fixed(shape = 0.8, colour = 0.2)
    phase all { epochs = 1 }
}
"""


def test_compare_train_gives_each_single_task_model_the_images_its_task_saw_and_resumes(tmp_path, capsys):
    spec, out = tmp_path / "pair.mtl", tmp_path / "out"
    spec.write_text(TRAINED)
    command = ["compare", str(spec), "--out", str(out), "--runs", "1", "--batch-sizes", "1", "--train", "--quiet"]
    assert main(command) == 0
    assert "Δ = multi − single" in " ".join(capsys.readouterr().out.split())
    result = json.loads((out / "compare.json").read_text())
    runs = result["training"]["runs"]
    assert set(runs) == {MULTI, "shape", "colour"} and result["training"]["budget"] == "images"
    # Fixed sampling starves colour (0.2 of the steps): its single-task model gets that budget, not a full pass.
    assert runs[MULTI]["images"]["colour"] < runs[MULTI]["images"]["shape"]
    for task in ("shape", "colour"):
        assert abs(runs[task]["images"][task] - runs[MULTI]["images"][task]) <= 8 / 2
        for run in (runs[MULTI], runs[task]):
            metric = run["metrics"][task]
            assert metric["metric"] == "accuracy" and metric["split"] == "test" and 0 <= metric["value"] <= 1
        assert (out / "runs" / f"single-{task}" / "train.py").is_file()
    assert "| shape | accuracy | test |" in (out / "compare.md").read_text()
    # The training payoff: multi-task steps' time against the single-task models' summed time, and the rates.
    payoff = result["training"]["time"]
    single_seconds = sum(runs[task]["seconds"] for task in ("shape", "colour"))
    assert payoff["single_seconds"] == pytest.approx(single_seconds)
    assert payoff["multi_seconds"] == runs[MULTI]["seconds"]
    assert payoff["ratio"] == pytest.approx(runs[MULTI]["seconds"] / single_seconds)
    assert payoff["multi_wall_seconds"] >= payoff["multi_seconds"] > 0
    multi_images = sum(runs[MULTI]["images"].values())
    assert payoff["multi_images_per_second"] == pytest.approx(multi_images / payoff["multi_seconds"])
    assert f"| training | seconds (steps) |  | {payoff['multi_seconds']:.0f} |" in (out / "compare.md").read_text()
    # The multi-task run keeps the spec it was compiled from; a single-task run has no text of its own.
    assert (out / "runs" / MULTI / "spec.mtl").read_text() == TRAINED
    assert not (out / "runs" / "single-shape" / "spec.mtl").exists()

    checkpoints = sorted((out / "runs").glob("*/checkpoints/*.pt"))
    stamps = [path.stat().st_mtime_ns for path in checkpoints]
    assert main([*command, "--resume"]) == 0  # finished runs are read back, not trained again
    assert [path.stat().st_mtime_ns for path in checkpoints] == stamps
    assert json.loads((out / "compare.json").read_text())["training"]["runs"] == runs

    assert main(command) == 2  # a used --out is refused, and left as it was
    assert "--overwrite" in capsys.readouterr().err
    assert [path.stat().st_mtime_ns for path in checkpoints] == stamps


def test_sigterm_stops_compare_train_cleanly_and_resume_finishes_every_run(tmp_path, capsys):
    """As SLURM stops a job: every process gets SIGTERM. The command says how to resume, and resuming
    continues the run in progress from its last checkpoint instead of starting it again."""
    spec, out = tmp_path / "pair.mtl", tmp_path / "out"
    spec.write_text(TRAINED.replace("epochs = 1", "epochs = 4"))
    command = ["compare", str(spec), "--out", str(out), "--runs", "1", "--batch-sizes", "1", "--train", "--quiet"]
    process = subprocess.Popen([sys.executable, "-m", "mtdsl", *command], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    multi = out / "runs" / MULTI
    deadline = time.monotonic() + 240
    while not (multi / "metrics.jsonl").exists() or not records(multi, "val"):
        assert process.poll() is None and time.monotonic() < deadline, "the comparison ended before it was stopped"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 128 + signal.SIGTERM
    said = " ".join(stdout.split())
    assert "stopped by SIGTERM" in said and "--resume" in said and "Traceback" not in stdout + stderr
    done = len(records(multi, "val"))
    assert 1 <= done < 4 and not (out / "compare.json").exists()

    assert main([*command, "--resume"]) == 0
    epochs = [record["epoch"] for record in records(multi, "val")]
    assert epochs == [1, 2, 3, 4]  # continued where it stopped: no epoch logged twice
    assert set(json.loads((out / "compare.json").read_text())["training"]["runs"]) == {MULTI, "shape", "colour"}


def test_a_seconds_budget_stops_each_epoch_when_its_time_is_spent(tmp_path):
    from mtdsl.launch import train_compiled
    from mtdsl.train.loop.budget import Budget
    from mtdsl.train.run.folder import RunFolder
    from mtdsl.train.run.report import MetricsLog

    compilation = compile_text(TRAINED.replace("epochs = 1", "epochs = 2"))
    run = RunFolder(tmp_path / "run")
    train_compiled(compilation, run, resume=False, overwrite=False, seed=0, device="cpu", workers=0, quiet=True,
                   budget=Budget.of("seconds", [0.0, 0.0]), announce=lambda line: None)
    epochs = [r for r in MetricsLog.read(run.metrics) if r["event"] == "train"]
    assert len(epochs) == 2 and all(sum(r["images"].values()) == 8 for r in epochs)  # one step each


def test_the_seconds_budget_shares_each_epoch_by_the_images_each_task_saw():
    from mtdsl.compare.training import task_budget

    multi = {"epochs": 2, "seconds_per_epoch": [30.0, 60.0],
             "images_per_epoch": {"a": [100, 100], "b": [300, 100]}}
    assert task_budget(multi, "a", "seconds").seconds == (7.5, 30.0)
    assert task_budget(multi, "b", "seconds").seconds == (22.5, 30.0)
    assert task_budget(multi, "b", "images").images == (300, 100)


def test_resume_and_overwrite_without_train_are_refused(tmp_path, capsys):
    spec = tmp_path / "pair.mtl"
    spec.write_text(TRAINED)
    assert main(["compare", str(spec), "--out", str(tmp_path / "out"), "--resume"]) == 2
    assert "--train" in capsys.readouterr().err
