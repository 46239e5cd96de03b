"""A short run on the real datasets in ../shared/data (skipped when they are absent)."""

from __future__ import annotations

import json

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
