"""Training conveniences (issue 23, item 3) and the loop's read-outs (item 8), on tiny CPU runs.

* ``ema``: validation reads the average, every checkpoint holds it, and a run
  stopped between epochs or within one resumes to the same average bit for bit;
* ``lr_scale``: parts of the model train at their factor of the schedule's rate;
* ``early_stop``: the run ends after N epochs without a better mean validation
  metric, says so, and a resumed run stays stopped;
* read-outs: losses and gradient norms stay on the device between read-outs,
  the interval changes no logged number or weight, and a NaN still stops the
  run naming its step.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from test_training import records, train, write_spec

from mtdsl.cli import main
from mtdsl.compiler import compile_file
from mtdsl.errors import TrainingError
from mtdsl.graph.parts import parameter_parts, parameters_in
from mtdsl.predict.loading import load_model
from mtdsl.spec.references import SegmentRef
from mtdsl.spec.streams import Stream
from mtdsl.train.loop.budget import Budget
from mtdsl.train.loop.freezing import phases_of
from mtdsl.train.loop.optimizer import build_optimizer, set_learning_rate, use_phase_scales
from mtdsl.train.loop.readout import StepReadout
from mtdsl.train.loop.runtime import load_generated
from mtdsl.train.parallel.world import World
from mtdsl.train.run.stop_signals import RunStopped

EMA = "    epochs = 3\n    ema = ema(0.9, warmup = true)"


def compiled_loop(spec: Path, out: Path):
    """``spec``'s generated train.py in ``out``, imported, for a test to adjust before it trains."""
    assert main(["compile", str(spec), "--out", str(out)]) == 0
    return load_generated(out / "train.py")


def checkpoint(out: Path, name: str = "last") -> dict:
    return torch.load(out / "checkpoints" / f"{name}.pt", weights_only=True)


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


# ------------------------------------------------------------------------------- ema


def test_validation_reads_the_average_and_every_checkpoint_holds_it(tmp_path, capsys):
    spec = write_spec(tmp_path, EMA)
    loop = compiled_loop(spec, tmp_path / "run")
    evaluated = []
    original = loop.evaluate

    def recording(model, *args, **kwargs):
        evaluated.append({name: value.clone() for name, value in model.state_dict().items()})
        return original(model, *args, **kwargs)

    loop.evaluate = recording
    loop.train(tmp_path / "run", quiet=False)
    last = checkpoint(tmp_path / "run")
    assert not same_tensors(last["ema"], last["model"])  # the average trails the weights
    assert same_tensors(evaluated[2], last["ema"])  # epoch 3's validation read the average, not the weights
    assert all(record["weights"] == "ema" for record in records(tmp_path / "run", "val"))
    assert "validating and testing the weights' moving average (ema, decay 0.9)" in " ".join(
        capsys.readouterr().out.split())
    # mtdsl eval reads the average too, so it reproduces the run's own test.
    best = tmp_path / "run" / "checkpoints" / "best.pt"
    assert checkpoint(tmp_path / "run", "best")["ema"] is not None
    assert main(["eval", str(spec), "--checkpoint", str(best)]) == 0
    test = records(tmp_path / "run", "test")[0]["metrics"]
    evaluated_again = loop.evaluate_checkpoint(best, quiet=True)["results"]
    assert evaluated_again == test
    # predict and export load the average as well.
    compilation = compile_file(spec)
    loaded = load_model(compilation.spec, compilation.graph, best, torch.device("cpu")).state_dict()
    assert same_tensors(loaded, checkpoint(tmp_path / "run", "best")["ema"])


def test_a_run_without_ema_saves_none_and_tests_its_weights(tmp_path):
    spec = write_spec(tmp_path, "    epochs = 1")
    assert train(spec, tmp_path / "run") == 0
    assert checkpoint(tmp_path / "run")["ema"] is None
    assert "weights" not in records(tmp_path / "run", "val")[0]


@pytest.mark.slow
def test_the_average_resumes_bit_for_bit_after_an_epoch_and_within_one(tmp_path):
    spec = write_spec(tmp_path, EMA)
    assert train(spec, tmp_path / "whole") == 0
    whole = checkpoint(tmp_path / "whole")

    # Stopped by SIGTERM in the middle of epoch 2, between two read-outs, then resumed.
    stopped = tmp_path / "stopped"
    loop = compiled_loop(spec, stopped)
    loop.READ_OUT_EVERY = 3
    calls = []
    shape_loss = loop.LOSSES["shape"]

    def signalling(*args):
        calls.append(1)
        if len(calls) == 7:  # epoch 2 (each epoch has 4 shape+colour steps)
            os.kill(os.getpid(), signal.SIGTERM)
        return shape_loss(*args)

    loop.LOSSES["shape"] = signalling
    with pytest.raises(RunStopped):
        loop.train(stopped, quiet=True)
    state = checkpoint(stopped)["state"]
    assert state["epoch"] == 1 and state["within_epoch"]["steps"] >= 1
    assert train(spec, stopped, "--resume") == 0

    resumed = checkpoint(stopped)
    assert same_tensors(resumed["ema"], whole["ema"]) and same_tensors(resumed["model"], whole["model"])
    losses = [r["losses"] for r in records(tmp_path / "whole", "train")]
    assert [r["losses"] for r in records(stopped, "train")] == losses
    assert records(stopped, "val") == records(tmp_path / "whole", "val")


# -------------------------------------------------------------------------- lr_scale


SCALED = """    epochs = 2
    lr_scale = scale(backbones = 0.1, trunk.stage4 = 0.5)
    phase warm { epochs = 1 }
    phase tune { epochs = 1; lr_scale = scale(heads = 2) }"""


def test_each_part_gets_its_factor_of_the_schedule_rate_in_each_phase(tmp_path):
    compilation = compile_file(write_spec(tmp_path, SCALED.replace("    epochs = 2\n", "")))
    model = compilation.model()
    phases = phases_of(compilation.graph, compilation.spec.train, compilation.spec.model)
    optimizer = build_optimizer(compilation.spec.train.optimizer, model, None, phases)
    rate = {id(p): None for p in model.parameters()}

    def rates(phase):
        use_phase_scales(optimizer, phase)
        set_learning_rate(optimizer, 0.01)
        for group in optimizer.param_groups:
            rate.update({id(p): group["lr"] for p in group["params"]})
        return {name: rate[id(p)] for name, p in model.named_parameters()}

    for phase, head in zip(phases, (0.01, 0.02)):
        by_name = rates(phase)
        for name, value in by_name.items():
            if name.startswith(("backbone.trunk.stage4.", "branches.colour.stage4.")):  # the later target wins
                assert value == pytest.approx(0.005), name
            elif name.startswith(("backbone.", "branches.")):
                assert value == pytest.approx(0.001), name
            else:
                assert name.startswith("heads.") and value == pytest.approx(head), name


def test_without_lr_scale_the_optimizer_keeps_its_two_groups(tmp_path):
    compilation = compile_file(write_spec(tmp_path))
    model = compilation.model()
    phases = phases_of(compilation.graph, compilation.spec.train, compilation.spec.model)
    optimizer = build_optimizer(compilation.spec.train.optimizer, model, None, phases)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.05, 0.0]
    assert "lr_scales" not in optimizer.param_groups[0]


def test_parts_resolve_from_python_with_the_freeze_words(tmp_path):
    compilation = compile_file(write_spec(tmp_path))
    names = list(dict(compilation.model().named_parameters()))
    parts = parameter_parts(compilation.graph, names)
    assert None not in parts.values()  # every parameter lies in a part of the graph
    stem = next(name for name in names if name.startswith("backbone.trunk.stem."))
    large = next(name for name in names if name.startswith("heads.large."))
    assert parts[stem] == "trunk.stem" and parts[large] == "large.head"
    stage4 = parameters_in(compilation.graph, SegmentRef("trunk", "stage4"), names)
    assert stage4 and all(name.startswith(("backbone.trunk.stage4.", "branches.colour.stage4.")) for name in stage4)
    heads = parameters_in(compilation.graph, SegmentRef("heads"), names)
    assert set(heads) == {name for name in names if name.startswith("heads.")}


def test_a_run_applies_the_scales_and_logs_the_schedule_rate(tmp_path):
    spec = write_spec(tmp_path, SCALED)
    assert train(spec, tmp_path / "run") == 0
    groups = checkpoint(tmp_path / "run")["optimizer"]["param_groups"]
    # The tune phase's factors; 1 is the unscaled groups' (empty: every parameter is in a scaled part).
    assert sorted({round(g["lr"] / 0.003, 6) for g in groups}) == [0.1, 0.5, 1.0, 2.0]
    assert {r["lr"] for r in records(tmp_path / "run", "train")} == {0.003}


# ------------------------------------------------------------------------ early_stop


def test_a_run_stops_after_n_epochs_without_improvement_and_stays_stopped(tmp_path, capsys):
    spec = write_spec(tmp_path, "    epochs = 6\n    early_stop = 2")
    loop = compiled_loop(spec, tmp_path / "run")
    scores = iter([0.5, 0.7, 0.6, 0.7, 0.9, 0.9])  # epochs 3 and 4 are no better than epoch 2
    loop.mean_main = lambda *args: next(scores)
    loop.train(tmp_path / "run", quiet=False)
    assert [r["epoch"] for r in records(tmp_path / "run", "val")] == [1, 2, 3, 4]
    assert records(tmp_path / "run", "early_stop") == [{"event": "early_stop", "epoch": 4, "best_epoch": 2}]
    assert records(tmp_path / "run", "test")[0]["epoch"] == 2
    assert ("no better mean validation metric for 2 epochs (best 0.7000 at epoch 2; early_stop = 2): "
            "stopping early after epoch 4") in " ".join(capsys.readouterr().out.split())  # however rich wraps it

    # Resumed, the run stays stopped: it tests again without training another epoch.
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--resume", "--quiet"]) == 0
    assert [r["epoch"] for r in records(tmp_path / "run", "val")] == [1, 2, 3, 4]


def test_a_budget_from_a_run_that_stopped_early_ends_the_run_there():
    budget = Budget.of("images", [640, 320])  # the multi-task run stopped after 2 of its 4 epochs
    budget.check(epochs=4)
    assert [budget.covers(epoch) for epoch in range(4)] == [True, True, False, False]
    assert Budget().covers(3)
    with pytest.raises(ValueError, match="names 5 epochs; the run has 4"):
        Budget.of("seconds", [1.0] * 5).check(epochs=4)


# -------------------------------------------------------------------------- read-outs


def test_recording_a_step_never_reads_the_device(monkeypatch):
    readout = StepReadout([Stream(("d",), ("a", "b"), 8), Stream(("d",), ("c",), 8)], World(), every=3)

    def forbidden(*args):
        raise AssertionError("a host read of a device value")

    with monkeypatch.context() as patched:
        for method in ("item", "tolist", "__float__", "__bool__"):
            patched.setattr(torch.Tensor, method, forbidden)
        readout.record(0, 0, {"a": torch.tensor(1.0), "b": torch.tensor(2.0)}, torch.tensor(3.0))
        readout.record(1, 1, {"c": torch.tensor(float("nan"))}, None, torch.tensor(4.0))
        assert not readout.due(last=False)
    assert readout.pending == 2
    (first, second), stop = readout.read()
    assert (first.number, first.losses, first.gradient_norm, first.scale) == (0, {"a": 1.0, "b": 2.0}, 3.0, 1.0)
    assert second.stream == 1 and second.gradient_norm is None and second.scale == 4.0
    assert second.losses["c"] != second.losses["c"] and stop is None and readout.pending == 0


def test_the_read_out_interval_changes_no_logged_number_or_weight(tmp_path):
    spec = write_spec(tmp_path, "    epochs = 2")
    reads = {}
    for every in (1, 5):
        out = tmp_path / f"every{every}"
        loop = compiled_loop(spec, out)
        loop.READ_OUT_EVERY = every
        calls = []
        original = World.read_out

        def counting(self, *args, calls=calls, original=original):
            calls.append(1)
            return original(self, *args)

        World.read_out = counting
        try:
            loop.train(out, quiet=True)
        finally:
            World.read_out = original
        reads[every] = len(calls)
    one, five = (records(tmp_path / f"every{n}", "train") for n in (1, 5))
    for a, b in zip(one, five):
        assert {k: v for k, v in a.items() if "seconds" not in k} == {k: v for k, v in b.items() if "seconds" not in k}
    assert same_tensors(checkpoint(tmp_path / "every1")["model"], checkpoint(tmp_path / "every5")["model"])
    steps = records(tmp_path / "every1", "train")[-1]["step"]
    assert reads == {1: steps, 5: 2 * 2}  # 8 steps an epoch: a read-out after steps 5 and 8


def test_a_nan_loss_between_read_outs_still_stops_the_run_naming_its_step(tmp_path):
    spec = write_spec(tmp_path, "    epochs = 2")
    loop = compiled_loop(spec, tmp_path / "run")
    loop.READ_OUT_EVERY = 100  # one read-out, at the epoch's end
    steps: list[str] = []  # each step runs shape's loss (stream shape+colour) or large's (stream large)
    poisoned_step = []
    shape_loss, large_loss = loop.LOSSES["shape"], loop.LOSSES["large"]

    def shape(*args):
        steps.append("shape")
        value = shape_loss(*args)
        if steps.count("shape") == 2:
            poisoned_step.append(len(steps) - 1)
            return value * float("nan")
        return value

    def large(*args):
        steps.append("large")
        return large_loss(*args)

    loop.LOSSES.update(shape=shape, large=large)
    with pytest.raises(TrainingError) as caught:
        loop.train(tmp_path / "run", quiet=True)
    assert len(steps) == 8  # the epoch went on to its read-out
    assert f"the loss of task 'shape' became nan at epoch 1, step {poisoned_step[0]};" in caught.value.message
    assert "no checkpoint was written yet" in caught.value.message
