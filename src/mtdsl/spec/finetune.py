"""What ``auto`` means for ``batchnorm`` and ``lr_scale``: the defaults for fine-tuning a pretrained backbone.

A multi-task model shares its backbone between datasets. Measured on beans +
flowers102 with an ImageNet EfficientNet-Lite0 (AdamW 1e-3, one frozen epoch then
five of every layer, three seeds; docs/experiments.md (f)), two settings close
the gap to the single-task models, and neither costs those single-task models:

* ``batchnorm = eval`` once a pretrained backbone trains: its BatchNorm layers keep
  ImageNet's statistics instead of averaging the datasets' (in a multi-task run
  each task is validated with statistics partly from the others' images);
* the pretrained backbone at a tenth of the rate of the new layers
  (``lr_scale = scale(trunk = 0.1)``), so AdamW's first steps after unfreezing
  cannot wash out the ImageNet features the tasks share.

Both apply only when every backbone is pretrained (a randomly initialised
backbone has no statistics worth keeping and no features to protect).
``batchnorm = train`` and ``lr_scale = none`` give the behaviour before they
were defaults.

>>> from mtdsl.spec.model import ModelSpec, TimmBackbone
>>> from mtdsl.spec.training import TrainSpec
>>> model = ModelSpec(name="m", backbones={"trunk": TimmBackbone(model="resnet18", pretrained="imagenet")})
>>> lr_scale_of(TrainSpec(), model).factors, batchnorm_of(TrainSpec(), None, model)
({'trunk': 0.1}, 'eval')
>>> scratch = ModelSpec(name="m", backbones={"trunk": TimmBackbone(model="resnet18")})
>>> lr_scale_of(TrainSpec(), scratch), batchnorm_of(TrainSpec(), None, scratch)
(None, 'train')
"""

from __future__ import annotations

from typing import Literal

from mtdsl.spec.model import ModelSpec
from mtdsl.spec.training import LrScaleConfig, PhaseSpec, TrainSpec

#: The rate of a pretrained backbone's layers relative to the schedule's, by default.
PRETRAINED_LR_FACTOR = 0.1


def pretrained_backbones(model: ModelSpec) -> list[str]:
    """The backbones that start from pretrained weights, when every backbone does (else none)."""
    backbones = model.backbones
    if not backbones or any(backbone.pretrained == "none" for backbone in backbones.values()):
        return []
    return list(backbones)


def batchnorm_of(train: TrainSpec, phase: PhaseSpec | None, model: ModelSpec) -> Literal["train", "eval"]:
    """The phase's ``batchnorm``: its own, else the train block's, else ``eval`` for pretrained backbones."""
    setting = phase.batchnorm if phase is not None and phase.batchnorm != "auto" else train.batchnorm
    if setting != "auto":
        return setting
    return "eval" if pretrained_backbones(model) else "train"


def lr_scale_of(train: TrainSpec, model: ModelSpec) -> LrScaleConfig | None:
    """The train block's ``lr_scale``: as written, else each pretrained backbone at :data:`PRETRAINED_LR_FACTOR`."""
    if train.lr_scale != "auto":
        return train.lr_scale
    names = pretrained_backbones(model)
    return LrScaleConfig(factors=dict.fromkeys(names, PRETRAINED_LR_FACTOR)) if names else None
