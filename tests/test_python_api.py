"""mtdsl from Python: ``import mtdsl`` stays cheap, and compile, train and load do what the CLI does.

docs/python_api.md's ```python blocks are run in order, in one namespace, in a fresh folder:
the page is true as long as this file passes.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from PIL import Image

import mtdsl
from mtdsl.errors import ArtefactError, MtdslError, SpecValueError, TrainingError

DOC = ROOT / "docs" / "python_api.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)

SPEC = """
model tiny
input 3x64x64
let classes = 3
let width = 16
backbone trunk = timm("test_resnet")
neck pyramid = bifpn(trunk, channels = ${width}, repeats = 1, max_level = 5)
dataset shapes = synthetic(count = 64, size = 64, seed = 0)
task shape: classify(shapes) { classes = ${classes} }
task regions: segment(shapes) { classes = [background, circle, square, triangle] }
train { batch_size = 16; workers = 0; epochs = 1 }
"""


def test_import_mtdsl_and_compile_load_no_torch_until_a_model_is_built(tmp_path):
    code = ("import sys, mtdsl; before = 'torch' in sys.modules; mtdsl.compile; "
            "print(before, 'torch' in sys.modules, mtdsl.compile is mtdsl.api.compile)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert result.stdout.split() == ["False", "False", "True"], result.stderr
    spec = tmp_path / "tiny.mtl"
    spec.write_text(SPEC)
    code = ("import sys, mtdsl; c = mtdsl.compile(sys.argv[1]); once = 'torch' in sys.modules; c.model(); "
            "print(once, 'torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MTDSL_CACHE_DIR": str(tmp_path / "cache")}
    for expected in (["True", "True"], ["False", "True"]):  # sizes its heads on torch once, then from the cache
        result = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, timeout=300,
                                env=env)
        assert result.stdout.split() == expected, result.stderr
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        mtdsl.nothing  # noqa: B018
    assert {"compile", "train", "load", "TrainResult"} <= set(dir(mtdsl))


def test_compile_reads_paths_and_text_and_sets_variables_as_set_does():
    from_file = mtdsl.compile(ROOT / "specs" / "plants.mtl", arch="efficientnet_b3")
    assert from_file.graph.nodes["trunk.stage4"]["model"] == "efficientnet_b3"
    assert mtdsl.compile(str(ROOT / "specs" / "quickstart.mtl")).spec.name == "quickstart"
    model = mtdsl.compile(SPEC, classes=5).model()
    assert model(torch.zeros(1, 3, 64, 64), tasks=["shape"])["shape"].shape == (1, 5)
    with pytest.raises(SpecValueError, match="a string, a number or a boolean"):
        mtdsl.compile(SPEC, classes=[1, 2])
    with pytest.raises(MtdslError, match="--set nosuch"):
        mtdsl.compile(SPEC, nosuch=1)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> mtdsl.TrainResult:
    out = tmp_path_factory.mktemp("api") / "run"
    return mtdsl.train(SPEC, out, device="cpu", quiet=True, overrides={"width": 24})


def test_train_returns_the_run_its_best_epoch_and_test_metrics(run):
    assert isinstance(run, mtdsl.TrainResult) and run.best_epoch == 1 and run.best.is_file()
    assert run.mains == {"shape": "accuracy", "regions": "miou"}
    assert set(run.test) == {"shape", "regions"} and run.main["regions"] == run.test["regions"]["miou"]
    recorded = (run.run_dir / "test.json").read_text()
    assert f'"miou": {run.test["regions"]["miou"]}' in recorded or str(round(run.test["regions"]["miou"], 4)) \
        in (run.run_dir / "test.md").read_text()
    with pytest.raises(MtdslError, match="already holds a run"):
        mtdsl.train(SPEC, run.run_dir, device="cpu", quiet=True, overrides={"width": 24})
    with pytest.raises(SpecValueError, match="compiled already"):
        mtdsl.train(mtdsl.compile(SPEC), run.run_dir, overrides={"width": 24})


def test_load_uses_the_runs_own_spec_and_variables_and_predicts(run, tmp_path):
    trained = mtdsl.load(run.run_dir, device="cpu")  # width = 24 came from the run's spec.json
    assert not trained.module.training and trained.checkpoint == run.best
    best = torch.load(run.best, weights_only=True)["model"]
    assert all(torch.equal(value, best[name]) for name, value in trained.module.state_dict().items())
    assert trained(torch.zeros(1, 3, 64, 64))["shape"].shape == (1, 3)

    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (40, 30), "red").save(images / "a.png")
    Image.new("RGB", (20, 50), "blue").save(images / "b.png")
    results = trained.predict([images, Image.new("RGB", (64, 64), "white")], tasks="regions", batch_size=2)
    assert len(results) == 3 and all(set(result) == {"regions"} for result in results)
    assert [result["regions"]["mask"].shape for result in results] == [(30, 40), (50, 20), (64, 64)]
    assert sum(results[0]["regions"]["fractions"].values()) == pytest.approx(1.0, abs=1e-3)

    # The same answers as mtdsl predict writes, for the same image
    from mtdsl.predict import predict

    report = predict(trained.compilation.spec, trained.compilation.graph, run.best, [images / "a.png"],
                     tmp_path / "cli", device="cpu", progress=False)
    assert report.images[0].outputs["shape"]["class"] == trained.predict(images / "a.png")[0]["shape"]["class"]


def test_load_refuses_what_it_cannot_use(run, tmp_path):
    with pytest.raises(ArtefactError, match="no checkpoint"):
        mtdsl.load(tmp_path)
    lone = tmp_path / "best.pt"
    lone.write_bytes(run.best.read_bytes())
    with pytest.raises(ArtefactError, match=r"no spec\.mtl"):
        mtdsl.load(lone)
    assert mtdsl.load(lone, spec=SPEC.replace("${width}", "24"), device="cpu").tasks == ["shape", "regions"]
    with pytest.raises(TrainingError):
        mtdsl.load(lone, spec=SPEC, device="cpu")  # width 16: another model than the one trained


def test_the_pages_examples_run_in_order(tmp_path, monkeypatch):
    assert len(BLOCKS) >= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    printed = io.StringIO()
    for block in BLOCKS:
        with contextlib.redirect_stdout(printed):
            exec(compile(block, str(DOC), "exec"), namespace)
    lines = printed.getvalue().splitlines()
    # Where a line of the page states what it prints, it prints that.
    expected = [comment for block in BLOCKS for line in block.splitlines()
                if line.lstrip().startswith("print(") and (comment := line.partition("#")[2].strip())]
    assert len(lines) == len(expected)
    for shown, stated in zip(lines, expected):
        assert shown == stated, (shown, stated)
    assert Path("runs/tiny/checkpoints/best.pt").is_file()
