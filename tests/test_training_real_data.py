"""A short run on the real datasets in ../shared/data (skipped when they are absent)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import SHARED_DATA, requires_shared_data

from mtdsl.cli import main

PLANTS = """
model plants_small
input 3x48x48
backbone trunk = timm("test_resnet")
dataset ibean   = folder("{data}/beans/images", split = given)
dataset flowers = folder("{data}/flowers102/images", split = given)
task bean_health: classify(ibean) {{ classes = [angular_leaf_spot, bean_rust, healthy]; branch = trunk.stage3 }}
task flower: classify(flowers) {{ classes = 102 }}
train {{
    epochs = 1
    batch_size = 32
    workers = 0
    optimizer = sgd(lr = 0.01)
    sampling = fixed(bean_health = 0.7, flower = ramp(0.3, 0.5))
}}
"""


@pytest.mark.data
@requires_shared_data("beans")
@requires_shared_data("flowers102")
def test_plants_train_on_real_folders_with_given_splits(tmp_path):
    spec = tmp_path / "plants_small.mtl"
    spec.write_text(PLANTS.format(data=SHARED_DATA))
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    (train,) = [r for r in records if r["event"] == "train"]
    assert train["ratios"]["bean_health"] == pytest.approx(0.7 / 1.0, abs=0.05)
    test = next(r for r in records if r["event"] == "test")
    assert test["splits"] == {"flower": "test", "bean_health": "val"}  # beans has no test/ folder
    assert set(test["metrics"]) == {"flower", "bean_health"}


def _finite_events(run: Path, tasks: set[str]) -> dict[str, dict]:
    """The last train, val and test records of a run, after checking that each gives every task finite numbers."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    found = {record["event"]: record for record in records}
    assert set(found["train"]["losses"]) == tasks and set(found["val"]["metrics"]) == tasks
    assert set(found["test"]["metrics"]) == tasks
    for event, key in (("train", "losses"), ("val", "metrics"), ("test", "metrics")):
        numbers = list(_numbers(found[event][key]))
        assert numbers and all(math.isfinite(number) for number in numbers), found[event]
    return found


def _numbers(value: object):
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield float(value)


FLOWERS = """
model flowers_{size}
input 3x{size}x{size}
backbone trunk = timm("test_resnet")
dataset flowers = folder("{data}/flowers102/images", split = given)
task flower: classify(flowers) {{ classes = 102 }}
train {{
    epochs = 1
    batch_size = 32
    workers = 2
    optimizer = sgd(lr = 0.01)
}}
"""


@pytest.mark.data
@pytest.mark.slow
@requires_shared_data("flowers102")
@pytest.mark.parametrize("size", [160, 224])
def test_flowers_train_an_epoch_at_photo_sizes_through_loader_workers(tmp_path, size):
    """The 211x320 photos among flowers102's once gave a centre crop a left edge of -1e-14 at 160 px."""
    spec = tmp_path / f"flowers_{size}.mtl"
    spec.write_text(FLOWERS.format(size=size, data=SHARED_DATA))
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    events = _finite_events(tmp_path / "run", {"flower"})
    assert events["test"]["splits"] == {"flower": "test"}


@pytest.mark.data
@pytest.mark.slow
@requires_shared_data("beans")
@requires_shared_data("flowers102")
def test_plants_at_160_pixels_validate_without_a_crop_leaving_the_image(tmp_path):
    """The run that crashed at its first validation: ValueError("box offset can't be negative") in a worker."""
    spec = tmp_path / "plants_160.mtl"
    text = PLANTS.replace("input 3x48x48", "input 3x160x160").replace("workers = 0", "workers = 2")
    spec.write_text(text.format(data=SHARED_DATA))
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    events = _finite_events(tmp_path / "run", {"bean_health", "flower"})
    assert events["test"]["splits"] == {"flower": "test", "bean_health": "val"}
