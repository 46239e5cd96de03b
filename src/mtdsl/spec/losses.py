"""Loss configs: what ``loss = cross_entropy(…)``, ``bce(…)``, ``focal(…)``, ``detection(…)``, ``heatmap_focal(…)``.

A loss kind's config is registered here in :data:`LOSS_CONFIGS`; the module
that implements it registers its builder under the same key in
:mod:`mtdsl.nn.losses`. Which losses fit a task kind is the kind's to say
(:attr:`mtdsl.kinds.TaskKind.losses`); ``task_kinds`` reads it back.

>>> losses_for("binary")
['bce', 'focal']
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from mtdsl.kinds import TASK_KINDS
from mtdsl.kinds.registry import ServedKinds
from mtdsl.spec.fields import Fraction, PositiveWeight, Weight
from mtdsl.spec.registry import Config, Registry

#: The focal loss's focusing exponent; 2 is the usual value, and past ~10 every easy example weighs nothing.
MAX_GAMMA = 20.0
#: The Huber loss's delta, in box-delta units (EfficientDet uses 0.1).
MAX_DELTA = 100.0


class LossConfig(Config):
    kind: str
    task_kinds: ClassVar[ServedKinds] = ServedKinds("losses")


LOSS_CONFIGS: Registry[LossConfig] = Registry("loss")


def losses_for(task_kind: str) -> list[str]:
    """Loss kinds that can serve a task kind, the default first."""
    return TASK_KINDS.losses_for(task_kind)


@LOSS_CONFIGS.register("cross_entropy")
class CrossEntropyConfig(LossConfig):
    """``cross_entropy(label_smoothing = 0, dice = 0)``; ``dice`` (segment tasks only) adds that weight of Dice loss."""

    kind: Literal["cross_entropy"] = "cross_entropy"
    label_smoothing: Fraction = 0.0
    dice: Weight = 0.0


@LOSS_CONFIGS.register("detection")
class DetectionLossConfig(LossConfig):
    """``detection(alpha = 0.25, gamma = 2, box = huber, box_weight = 50, delta = 0.1)``: focal class + box loss."""

    kind: Literal["detection"] = "detection"
    alpha: float = Field(default=0.25, ge=0.0, le=1.0)
    gamma: float = Field(default=2.0, ge=0.0, le=MAX_GAMMA)
    box: Literal["huber", "smooth_l1"] = "huber"
    box_weight: Weight = 50.0
    delta: float = Field(default=0.1, gt=0.0, le=MAX_DELTA)


@LOSS_CONFIGS.register("bce")
class BinaryCrossEntropyConfig(LossConfig):
    kind: Literal["bce"] = "bce"
    pos_weight: PositiveWeight | None = None


@LOSS_CONFIGS.register("focal")
class FocalConfig(LossConfig):
    kind: Literal["focal"] = "focal"
    alpha: float = Field(default=0.25, ge=0.0, le=1.0)
    gamma: float = Field(default=2.0, ge=0.0, le=MAX_GAMMA)


#: A heatmap Gaussian's sigma, in heatmap cells.
MAX_HEATMAP_SIGMA = 32.0


@LOSS_CONFIGS.register("heatmap_focal")
class HeatmapFocalConfig(LossConfig):
    """``heatmap_focal(sigma = 2, beta = 2)``: a focal loss on a Gaussian heatmap per named point.

    Each labelled point's target is a Gaussian of ``sigma`` heatmap cells centred on it;
    ``beta`` focuses on the cells the model gets most wrong. See :class:`mtdsl.nn.losses.HeatmapFocalLoss`.
    """

    kind: Literal["heatmap_focal"] = "heatmap_focal"
    sigma: float = Field(default=2.0, gt=0.0, le=MAX_HEATMAP_SIGMA)
    beta: float = Field(default=2.0, ge=0.0, le=MAX_GAMMA)
