"""What the loaders refuse or warn about before the first step: empty splits, oversized batches, empty classes."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from mtdsl.errors import DataError, DataWarning
from mtdsl.spec.data import DatasetConfig, FolderDataset, SyntheticDataset
from mtdsl.spec.streams import Stream
from mtdsl.train.data.datasets import read_splits
from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.data.tasks import TaskLabels

SHAPE = TaskLabels("shape", "classify", ("circle", "square", "triangle"))
KIND = TaskLabels("kind", "classify", ("dark", "light"))


def _loaders(datasets: dict[str, DatasetConfig], task: TaskLabels, batch_size: int = 2, **stream) -> StreamLoaders:
    labels = {task.task: task if len(datasets) == 1 else TaskLabels(**{**task.__dict__, "partial": True})}
    return StreamLoaders(
        [Stream(tuple(datasets), (task.task,), batch_size, **stream)], datasets, labels, image_size=(16, 16),
        mean=(0.5,) * 3, std=(0.5,) * 3, seed=0, workers=0, on_corrupt="error", device=torch.device("cpu"),
    )


def _synthetic(count: int, split: list[float]) -> dict[str, DatasetConfig]:
    return {"d": SyntheticDataset(name="d", count=count, size=16, split=split)}


def _photos(root: Path, counts: dict[str, int]) -> Path:
    """``root/<class>/<i>.png``, ``counts[class]`` images per class (0: an empty class folder)."""
    for label, count in counts.items():
        (root / label).mkdir(parents=True)
        for index in range(count):
            Image.new("RGB", (12, 10), (20 * index, 100, 200)).save(root / label / f"{index}.png")
    return root


# ---------------------------------------------------------------- empty splits


@pytest.mark.parametrize(
    ("count", "split", "sizes"),
    [
        (4, [0.9, 0.1], "4 train · 0 val"),  # 0.1 of 4 rounds to nothing
        (20, [1.0, 0.0], "20 train · 0 val"),
        (5, [0.8, 0.1, 0.1], "4 train · 0 val · 1 test"),
    ],
)
def test_an_empty_validation_split_is_refused_before_training_with_a_fix_that_works(count, split, sizes):
    with pytest.raises(DataError) as error:
        _loaders(_synthetic(count, split), SHAPE)
    message = error.value.render()
    assert "dataset 'd' (tasks shape) has no validation examples" in message
    assert f"synthetic dataset 'd': {sizes}" in message and "every epoch is validated" in message
    hint = error.value.hint or ""
    raised = re.search(r"count = \d+ to (\d+) or more", hint)
    if split[1] == 0:
        assert "give val a share" in hint and "split = 0.8/0.2" in hint
    else:  # the count the hint asks for does give the split a validation example
        assert raised, hint
        _loaders(_synthetic(int(raised.group(1)), split), SHAPE)


def test_an_empty_training_split_names_every_joined_dataset(tmp_path):
    datasets = {
        name: FolderDataset(name=name, root=str(_photos(tmp_path / name, {"dark": 2, "light": 2})), split=[0.0, 1.0])
        for name in ("indoor", "outdoor")
    }
    with pytest.raises(DataError) as error:
        _loaders(datasets, KIND)
    message = error.value.render()
    assert "datasets 'indoor' + 'outdoor' joined (tasks kind) has no training examples" in message
    assert f"folder dataset 'indoor' ({tmp_path / 'indoor'}): 0 train · 4 val" in message
    assert f"folder dataset 'outdoor' ({tmp_path / 'outdoor'}): 0 train · 4 val" in message
    assert message.count("give train a share") == 2


def test_a_given_split_with_an_empty_val_folder_is_refused_before_training(tmp_path):
    root = tmp_path / "photos"
    _photos(root / "train", {"dark": 3, "light": 3})
    _photos(root / "val", {"dark": 0, "light": 0})
    with pytest.raises(DataError, match=r"no images in the class folders of .*val"):
        _loaders({"photos": FolderDataset(name="photos", root=str(root))}, KIND)


# ---------------------------------------------------------------- batch size


@pytest.mark.parametrize("batch_size", [15, 100_000])
def test_a_batch_larger_than_the_training_split_is_refused_with_the_largest_that_fits(batch_size):
    datasets = _synthetic(20, [0.7, 0.3])  # 14 training examples
    with pytest.raises(DataError) as error:
        _loaders(datasets, SHAPE, batch_size=batch_size)
    message = error.value.render()
    assert f"has 14 training examples, fewer than its batch size of {batch_size}" in message
    assert "batch_size = 14 or less" in (error.value.hint or "")
    loaders = _loaders(datasets, SHAPE, batch_size=14)  # the largest it names works
    assert len(loaders.next_batch(0)["index"]) == 14


def test_a_balanced_stream_checks_its_own_batch_size():
    task = TaskLabels("large", "binary", None)
    with pytest.raises(DataError, match="has 14 training examples, fewer than its batch size of 16"):
        _loaders(_synthetic(20, [0.7, 0.3]), task, batch_size=16, balanced="large")


def test_the_cli_refuses_a_huge_batch_before_training(tmp_path, capsys):
    from mtdsl.cli import main

    spec = tmp_path / "huge.mtl"
    spec.write_text(
        'model huge\ninput 3x32x32\nbackbone trunk = timm("test_resnet")\n'
        "dataset shapes = synthetic(count = 40, size = 32)\n"
        "task shape: classify(shapes) { classes = [circle, square, triangle] }\n"
        "train { epochs = 1; batch_size = 4000; workers = 0 }\n"
    )
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "28 training examples, fewer than its batch size of 4000" in error and "Traceback" not in error
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


# ---------------------------------------------------------------- empty class folders


def test_an_empty_class_folder_is_a_warning_not_an_error(tmp_path):
    root = _photos(tmp_path / "photos", {"dark": 4, "light": 4, "grey": 0})
    config = FolderDataset(name="photos", root=str(root), split=[0.5, 0.5])
    task = TaskLabels("kind", "classify", ("dark", "grey", "light"))
    with pytest.warns(DataWarning, match=f"the class folder {root / 'grey'} holds no images, so class 'grey'"):
        splits = read_splits(config, [task])
    assert sum(len(split) for split in splits.values()) == 8


def test_the_loaders_show_data_warnings_after_the_split_sizes(tmp_path):
    root = tmp_path / "photos"
    _photos(root / "train", {"dark": 3, "light": 3, "grey": 0})
    _photos(root / "val", {"dark": 1, "light": 1, "grey": 1})
    task = TaskLabels("kind", "classify", ("dark", "grey", "light"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # the loaders keep them for describe(), none escapes
        loaders = _loaders({"photos": FolderDataset(name="photos", root=str(root))}, task)
    stream, warning = loaders.describe()
    assert stream == "photos → kind: 6 train · 3 val"
    assert warning.startswith("[yellow]warning:[/] folder dataset 'photos'")
    assert "grey holds no images, so class 'grey' has no train examples" in warning


def test_mtdsl_train_prints_the_warning_before_training(tmp_path, capsys):
    from mtdsl.cli import main

    root = _photos(tmp_path / "photos", {"dark": 4, "light": 4, "grey": 0})
    spec = tmp_path / "photos.mtl"
    spec.write_text(
        f'model photos\ninput 3x32x32\nbackbone trunk = timm("test_resnet")\n'
        f'dataset photos = folder("{root}", split = 0.5/0.5)\n'
        "task kind: classify(photos) { classes = [dark, grey, light] }\n"
        "train { epochs = 1; batch_size = 2; workers = 0 }\n"
    )
    assert main(["train", str(spec), "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "warning: folder dataset 'photos'" in printed and "class 'grey' has no examples" in printed
    assert printed.index("class 'grey'") < printed.index("trained")
