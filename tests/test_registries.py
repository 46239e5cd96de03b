"""One registry pattern: each config kind a spec may name (``spec/``) has its implementation under the same key."""

from __future__ import annotations

from typing import Literal

import pytest

from mtdsl.nn.heads import HEAD_BUILDERS
from mtdsl.nn.losses import LOSS_BUILDERS
from mtdsl.nn.necks import NECK_BUILDERS
from mtdsl.spec.registry import Builders, Config, Registry
from mtdsl.train.data.formats import READERS
from mtdsl.train.loop.optimizer import OPTIMIZER_BUILDERS
from mtdsl.train.loop.sampling import PLANNERS
from mtdsl.train.loop.schedule import SCHEDULE_RULES
from mtdsl.train.loop.weighting import WEIGHTING_METHODS

BUILDERS = {
    "heads": HEAD_BUILDERS,
    "necks": NECK_BUILDERS,
    "losses": LOSS_BUILDERS,
    "optimizers": OPTIMIZER_BUILDERS,
    "schedules": SCHEDULE_RULES,
    "sampling": PLANNERS,
    "weighting": WEIGHTING_METHODS,
    "dataset formats": READERS,
}


@pytest.mark.parametrize("name", BUILDERS)
def test_every_config_kind_has_its_implementation(name):
    builders = BUILDERS[name]
    assert builders.missing() == []
    assert set(builders) == set(builders.configs.kinds())


def test_an_implementation_needs_a_config_of_its_kind_and_only_one():
    configs: Registry[Config] = Registry("demo")

    @configs.register("thing")
    class ThingConfig(Config):
        kind: Literal["thing"] = "thing"

    builders: Builders = Builders(configs)
    builders.register("thing")(lambda config: 1)
    with pytest.raises(ValueError, match="demo 'other' has a builder but no registered config"):
        builders.register("other")(lambda config: 2)
    with pytest.raises(ValueError, match="demo 'thing' has two builders"):
        builders.register("thing")(lambda config: 3)
    assert builders.build(ThingConfig()) == 1
