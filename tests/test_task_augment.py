"""A task's own ``augment = [...]``: it replaces its datasets' for the task's samples.

The tasks of a stream read one image tensor per batch, so a task with its own
``augment`` trains from a stream of its own (shared with the tasks of the same
datasets that write the same list); everything else keeps its stream.
"""

from __future__ import annotations

import pytest
import torch

from mtdsl.codegen.train_source import generate_train_source, spec_block
from mtdsl.compiler import compile_text
from mtdsl.errors import SpecNameError, SpecValueError
from mtdsl.spec.augment import ColourJitter, Flip
from mtdsl.spec.load import load_text
from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.data.tasks import task_labels
from mtdsl.train.run.fingerprints import spec_hash

SPEC = """model sides
input 3x32x32
backbone trunk = timm("test_resnet")
dataset signs = synthetic(count = 16, size = 32) {{ augment = [] }}
task shape:  classify(signs) {{ classes = 3{shape} }}
task colour: classify(signs) {{ classes = 3{colour} }}
task large:  binary(signs) {{ balanced = false{large} }}
train {{ batch_size = 4; workers = 0 }}
"""


def _spec(shape: str = "", colour: str = "", large: str = ""):
    return load_text(SPEC.format(shape=shape, colour=colour, large=large))


def test_tasks_without_their_own_augment_share_one_stream_as_before():
    (stream,) = _spec().streams
    assert stream.tasks == ("shape", "colour", "large") and stream.augment is None


def test_a_task_with_its_own_augment_trains_from_a_stream_of_its_own():
    spec = _spec(shape="; augment = [flip(1.0)]", large="; augment = [colour_jitter]",
                 colour="; augment = [colour_jitter]")
    assert [(s.tasks, s.augment) for s in spec.streams] == [
        (("shape",), (Flip(p=1.0),)),
        (("colour", "large"), (ColourJitter(),)),  # the same list: one stream
    ]


def test_a_balanced_task_keeps_its_own_augment():
    spec = load_text(SPEC.format(shape="", colour="", large="").replace("balanced = false", "augment = [flip]"))
    balanced = next(s for s in spec.streams if s.balanced)
    assert balanced.tasks == ("large",) and balanced.augment == (Flip(),)


def test_the_task_augment_reaches_its_samples_and_the_others_keep_the_datasets():
    """The dataset says no augment; ``shape`` flips every image: its items are the others' mirrored."""
    spec = _spec(shape="; augment = [flip(1.0)]")
    labels = {label.task: label for label in task_labels(spec)}
    loaders = StreamLoaders(spec.streams, spec.datasets, labels, image_size=(32, 32), mean=(0.5,) * 3,
                            std=(0.5,) * 3, seed=0, workers=0, on_corrupt="error", device=torch.device("cpu"))
    flipped, plain = (loaders.splits[index]["train"] for index in range(2))
    assert [s.tasks for s in loaders.streams] == [("shape",), ("colour", "large")]
    for index in range(4):
        mine, theirs = flipped[(index, 7)], plain[(index, 7)]
        assert torch.equal(mine["image"], theirs["image"].flip(-1))
        assert set(mine["targets"]) == {"shape"} and set(theirs["targets"]) == {"colour", "large"}
    evaluated = flipped.for_evaluation()[(0, 7)]["image"]
    assert torch.equal(evaluated, plain[(0, 7)]["image"])  # evaluation sees the plain resize, whatever augments


def test_train_py_writes_a_stream_augment_only_where_a_task_gives_one():
    compiled = compile_text(SPEC.format(shape="; augment = [flip(1.0), colour_jitter(0.2)]", colour="", large=""))
    block = spec_block(compiled.spec, compiled.graph)
    streams = block[block.index("STREAMS = ["):block.index("]\n", block.index("STREAMS = ["))]
    assert "augment=(Flip(kind='flip', p=1.0)," in streams and streams.count("augment=") == 1
    assert "from mtdsl.spec.augment import ColourJitter, Flip" in block
    namespace: dict = {"__name__": "generated", "__file__": "train.py"}
    source = generate_train_source(compiled.spec, compiled.graph)
    exec(compile(source, "train.py", "exec"), namespace)  # the file's constants rebuild the planned streams
    assert namespace["STREAMS"] == compiled.spec.streams


def test_a_task_augment_changes_the_spec_hash_and_its_absence_does_not():
    plain = _spec()
    assert spec_hash(plain) != spec_hash(_spec(shape="; augment = [flip]"))
    assert spec_hash(plain) != spec_hash(_spec(shape="; augment = []"))  # [] (none) is not "the dataset's"


DENSE = """model m
input 3x32x32
backbone trunk = timm("test_resnet")
neck p = bifpn(trunk, channels = 16, repeats = 1)
dataset d = synthetic(count = 16, size = 32) {{ augment = [{dataset}] }}
task regions: segment(d) {{ classes = [background, circle, square, triangle]{regions} }}
task shape: classify(d) {{ classes = 3{shape} }}
"""


def test_a_dense_task_refuses_image_only_ops_in_its_own_augment_at_the_op():
    text = DENSE.format(dataset="flip", regions="; augment = [flip, randaugment]", shape="")
    with pytest.raises(SpecValueError, match="randaugment in the augment of segment task 'regions' moves pixels"
                       ) as raised:
        load_text(text)
    line = text.splitlines()[5]
    assert (raised.value.span.line, raised.value.span.column) == (6, line.index("randaugment") + 1)
    assert raised.value.hint == "remove randaugment here"


def test_an_image_label_task_may_take_image_only_ops_beside_a_dense_task_on_one_dataset():
    spec = load_text(DENSE.format(dataset="flip", regions="", shape="; augment = [crop, flip, trivialaugment]"))
    assert [s.tasks for s in spec.streams] == [("regions",), ("shape",)]


def test_a_dense_task_with_its_own_augment_is_spared_the_datasets_image_only_ops():
    text = DENSE.format(dataset="flip, randaugment", regions="", shape="")
    with pytest.raises(SpecValueError, match="give task 'regions' its own augment") as raised:
        load_text(text)
    assert raised.value.span.line == 5
    spec = load_text(DENSE.format(dataset="flip, randaugment", regions="; augment = [flip]", shape=""))
    assert [(s.tasks, s.augment) for s in spec.streams] == [(("regions",), (Flip(),)), (("shape",), None)]


def test_joined_datasets_may_augment_differently_under_a_task_augment():
    joined = """model m
backbone trunk = timm("test_resnet")
dataset a = folder("a") {{ augment = [vflip] }}
dataset b = folder("b") {{ augment = [flip] }}
task shape: classify(a + b) {{ classes = [circle, square]{own} }}
"""
    with pytest.raises(SpecValueError, match="or give task 'shape' its own augment"):
        load_text(joined.format(own=""))
    (stream,) = load_text(joined.format(own="; augment = [crop]")).streams
    assert stream.datasets == ("a", "b") and stream.augment is not None and stream.augment[0].kind == "crop"


@pytest.mark.parametrize(
    ("shape", "error", "message"),
    [
        ("; augment = [flip]; augment = []", SpecNameError, "'augment' is given twice"),
        ("; augment = flip", SpecValueError, "augment in task 'shape' is a list of ops"),
        ("; augment = [flipp]", SpecNameError, "unknown augmentation op 'flipp'"),
    ],
)
def test_task_augment_mistakes_are_located(shape, error, message):
    with pytest.raises(error) as raised:
        _spec(shape=shape)
    assert message in raised.value.message and raised.value.span is not None and raised.value.span.line == 5


def test_a_run_with_a_task_augment_trains_each_stream_and_repeats_exactly(tmp_path):
    from mtdsl.cli import main
    from mtdsl.train.run.report import MetricsLog

    spec = tmp_path / "sides.mtl"
    spec.write_text(SPEC.format(shape="; augment = [crop, flip]", colour="; augment = [colour_jitter]", large="")
                    .replace("workers = 0", "workers = 0; epochs = 1"), encoding="utf-8")
    runs = []
    for out in ("a", "b"):
        assert main(["train", str(spec), "--out", str(tmp_path / out), "--quiet"]) == 0
        runs.append([r for r in MetricsLog.read(tmp_path / out / "metrics.jsonl") if r["event"] == "train"])
    assert set(runs[0][0]["ratios"]) == {"shape", "colour", "large"}  # three streams, each drawn
    assert [r["losses"] for r in runs[0]] == [r["losses"] for r in runs[1]]


def test_two_dense_streams_of_one_dataset_draw_apart_and_overwrite_clears_both(tmp_path):
    from mtdsl.cli import main

    text = DENSE.format(dataset="flip", regions="; augment = [vflip]", shape="") + (
        "task objects: detect(d) { classes = [circle, square, triangle] }\n"
        "train { batch_size = 4; workers = 0; epochs = 1 }\n")
    spec = tmp_path / "m.mtl"
    spec.write_text(text, encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run), "--quiet"]) == 0
    assert sorted(p.name for p in (run / "predictions").iterdir()) == ["d.regions.png", "d.shape+objects.png"]
    (run / "predictions" / "photo.png").write_bytes(b"not mtdsl's")
    spec.write_text(text.replace("; augment = [vflip]", ""), encoding="utf-8")
    assert main(["train", str(spec), "--out", str(run), "--quiet", "--overwrite"]) == 0
    assert sorted(p.name for p in (run / "predictions").iterdir()) == ["d.png", "photo.png"]
