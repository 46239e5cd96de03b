"""The training spec: what ``train { ... }`` and each task's training keys say.

It is separate from :class:`~mtdsl.spec.model.ModelSpec`: the model compiler
never sees datasets, losses, weights or sampling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from mtdsl.spec.augment import AugmentConfig
from mtdsl.spec.fields import (
    MAX_EPOCHS,
    MAX_LEARNING_RATE,
    MAX_POWER,
    BatchSize,
    Epochs,
    EpochsOrNone,
    EpochSpan,
    Flag,
    Fraction,
    LearningRate,
    LrFactor,
    PositiveWeightOrNone,
    Seed,
    Temperature,
    Weight,
    Workers,
)
from mtdsl.spec.losses import LossConfig
from mtdsl.spec.references import SegmentRef
from mtdsl.spec.registry import Config, Registry, SpecModel
from mtdsl.spec.tracking import Trackers

# ---------------------------------------------------------------- optimizers



class OptimizerConfig(Config):
    """Base of the optimizers' configs: what the parameter groups read of every one of them."""

    if TYPE_CHECKING:  # declared by each optimizer; not fields here, so no field order or fingerprint moves
        lr: float
        weight_decay: float


OPTIMIZERS: Registry[OptimizerConfig] = Registry("optimizer")


@OPTIMIZERS.register("sgd")
class SgdConfig(OptimizerConfig):
    kind: Literal["sgd"] = "sgd"
    lr: LearningRate = 0.01
    momentum: Fraction = 0.9
    weight_decay: float = Field(default=1e-4, ge=0.0, le=1.0)
    nesterov: Flag = False


@OPTIMIZERS.register("adamw")
class AdamWConfig(OptimizerConfig):
    kind: Literal["adamw"] = "adamw"
    lr: LearningRate = 1e-3
    weight_decay: float = Field(default=0.05, ge=0.0, le=1.0)
    betas: tuple[Fraction, Fraction] = (0.9, 0.999)


# ----------------------------------------------------------------- schedules

SCHEDULES: Registry[Config] = Registry("schedule")


@SCHEDULES.register("constant")
class ConstantScheduleConfig(Config):
    kind: Literal["constant"] = "constant"


@SCHEDULES.register("cyclic")
class CyclicScheduleConfig(Config):
    """Triangular cyclic learning rate (Smith 2017), the thesis' default.

    ``max_lr`` defaults to the optimizer's ``lr`` and ``base_lr`` to a hundredth of
    ``max_lr``, so the optimizer's rate is the rate the schedule peaks at unless the
    spec writes another (``--set lr=0.1`` moves the whole cycle).
    """

    kind: Literal["cyclic"] = "cyclic"
    base_lr: LearningRate | None = None
    max_lr: LearningRate | None = None
    cycle_epochs: float = Field(default=4.0, gt=0.0, le=MAX_EPOCHS)

    @model_validator(mode="after")
    def _ordered(self) -> CyclicScheduleConfig:
        if self.base_lr is not None and self.max_lr is not None and self.base_lr > self.max_lr:
            raise ValueError(f"base_lr ({self.base_lr:g}) must not exceed max_lr ({self.max_lr:g})")
        return self


@SCHEDULES.register("cosine")
class CosineScheduleConfig(Config):
    kind: Literal["cosine"] = "cosine"
    min_lr: float = Field(default=0.0, ge=0.0, le=MAX_LEARNING_RATE)


@SCHEDULES.register("step")
class StepScheduleConfig(Config):
    kind: Literal["step"] = "step"
    every: Epochs = 10
    gamma: float = Field(default=0.1, gt=0.0, le=1.0)

    positional = ("every",)


@SCHEDULES.register("poly")
class PolyScheduleConfig(Config):
    """``lr · (1 - progress / epochs)^power`` down to ``min_lr``: DeepLab's schedule for dense tasks."""

    kind: Literal["poly"] = "poly"
    power: float = Field(default=0.9, gt=0.0, le=MAX_POWER)
    min_lr: float = Field(default=0.0, ge=0.0, le=MAX_LEARNING_RATE)

    positional = ("power",)


# ---------------------------------------------------- weight average (EMA)

AVERAGES: Registry[Config] = Registry("weight average")


@AVERAGES.register("ema")
class EmaConfig(Config):
    """An exponential moving average of the weights (timm's ``ModelEmaV3``): ``ema = 0.9998``.

    After every optimizer step ``average ← decay · average + (1 - decay) · weights``;
    ``warmup`` ramps the decay up over the first steps (timm's ``use_warmup``), so an
    average that starts from random weights forgets them sooner.
    """

    kind: Literal["ema"] = "ema"
    decay: float
    warmup: Flag = False

    positional = ("decay",)

    @field_validator("decay")
    @classmethod
    def _a_fraction(cls, value: float) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError("decay must be in (0, 1), e.g. 0.9998 (closer to 1 averages over more steps)")
        return value


# ----------------------------------------------------- learning-rate scales

LR_SCALES: Registry[Config] = Registry("learning-rate scaling")


@LR_SCALES.register("scale")
class LrScaleConfig(Config):
    """``scale(backbones = 0.1, trunk.stage4 = 0.5)``: each named part's learning rate, times the schedule's.

    Keys are freeze targets (:mod:`mtdsl.graph.freeze`); where two name the same
    parameters, the later one wins.
    """

    kind: Literal["scale"] = "scale"
    factors: dict[str, LrFactor]

    keywords_field = "factors"

    @model_validator(mode="after")
    def _not_empty(self) -> LrScaleConfig:
        if not self.factors:
            raise ValueError("give each part a factor, e.g. scale(backbones = 0.1, heads = 1)")
        return self

    @property
    def targets(self) -> list[tuple[SegmentRef, float]]:
        """``(part, factor)`` in the order written (a later one wins where two overlap)."""
        return [(SegmentRef.parse(part), factor) for part, factor in self.factors.items()]


# ------------------------------------------------------------------ sampling

SAMPLERS: Registry[Config] = Registry("sampling strategy")


class Ramp(SpecModel):
    """``ramp(0.1, 0.2)``: a ratio that moves linearly from start to end over training."""

    kind: Literal["ramp"] = "ramp"
    start: Weight
    end: Weight

    @model_validator(mode="before")
    @classmethod
    def _positional(cls, value: object) -> object:
        if isinstance(value, dict) and "args" in value:
            value = dict(value)
            args = value.pop("args")
            if len(args) != 2:
                raise ValueError("ramp takes two values: ramp(start, end)")
            value["start"], value["end"] = args
        return value


RatioValue = Weight | Ramp


@SAMPLERS.register("proportional")
class ProportionalSampling(Config):
    """Sample tasks in proportion to their training-set size (the thesis' default)."""

    kind: Literal["proportional"] = "proportional"


@SAMPLERS.register("fixed")
class FixedSampling(Config):
    """``fixed(citrus = 0.73, beans = 0.27)``; a ratio may be ``ramp(start, end)``."""

    kind: Literal["fixed"] = "fixed"
    ratios: dict[str, RatioValue]

    keywords_field = "ratios"

    @model_validator(mode="after")
    def _not_all_zero(self) -> FixedSampling:
        if not self.ratios:
            raise ValueError("give each task a ratio, e.g. fixed(a = 0.7, b = 0.3)")
        starts = [r.start if isinstance(r, Ramp) else r for r in self.ratios.values()]
        if sum(starts) <= 0:
            raise ValueError("at least one ratio must be positive")
        return self


@SAMPLERS.register("equal")
class EqualSampling(Config):
    kind: Literal["equal"] = "equal"


@SAMPLERS.register("round_robin")
class RoundRobinSampling(Config):
    kind: Literal["round_robin"] = "round_robin"


@SAMPLERS.register("sequential")
class SequentialSampling(Config):
    """Whole datasets one after another (reproduces the failure of thesis §6.3)."""

    kind: Literal["sequential"] = "sequential"


@SAMPLERS.register("dynamic")
class DynamicSampling(Config):
    """Sample tasks more the further they are below their ``target`` metric (thesis §6.3's proposal)."""

    kind: Literal["dynamic"] = "dynamic"
    temperature: Temperature = 0.1
    floor: Fraction = 0.05


@SAMPLERS.register("joint")
class JointSampling(Config):
    """One stream over every task, its examples the datasets' training photos merged by photo (joint sampling).

    Each batch trains every task that its photos label, in one forward pass; validation and test stay per
    dataset (:func:`mtdsl.spec.streams.plan_streams`).
    """

    kind: Literal["joint"] = "joint"


# ----------------------------------------------------------------- weighting

WEIGHTINGS: Registry[Config] = Registry("loss weighting")


@WEIGHTINGS.register("constant")
class ConstantWeighting(Config):
    kind: Literal["constant"] = "constant"


@WEIGHTINGS.register("uncertainty")
class UncertaintyWeighting(Config):
    """Learned log-variances per task (Kendall, Gal & Cipolla 2018)."""

    kind: Literal["uncertainty"] = "uncertainty"


@WEIGHTINGS.register("dwa")
class DwaWeighting(Config):
    """Dynamic weight average (Liu, Johns & Davison 2019): gradient-free."""

    kind: Literal["dwa"] = "dwa"
    temperature: Temperature = 2.0


# -------------------------------------------------------------------- phases


class PhaseSpec(SpecModel):
    """A stretch of training with its own frozen parts: ``phase heads { epochs = 10; freeze = [trunk] }``."""

    name: str
    epochs: Epochs
    freeze: list[SegmentRef] = Field(default_factory=list)
    lr: LearningRate | None = None
    #: ``auto``: the train block's ``batchnorm`` (:mod:`mtdsl.spec.finetune`).
    batchnorm: Literal["auto", "train", "eval"] = "auto"
    lr_scale: LrScaleConfig | None = None


class TaskTraining(SpecModel):
    """The training side of one task block.

    ``datasets`` holds one name for ``detect(coco)`` and several for
    ``detect(pets + coco)``: a task that learns from several datasets, each of
    which may label only some of its classes (thesis §5.3).

    ``augment`` (``None``: not written) replaces its datasets' ``augment`` for
    this task's samples; the task then trains from batches of its own
    (:func:`mtdsl.spec.streams.plan_streams`).
    """

    datasets: tuple[str, ...] = Field(min_length=1)
    loss: SerializeAsAny[LossConfig]
    weight: Weight = 1.0
    batch_size: BatchSize | None = None
    positive: str | None = None
    label: str | None = None
    balanced: Flag | None = None
    target: float | None = Field(default=None, gt=0.0, le=1.0)
    augment: tuple[AugmentConfig, ...] | None = None


class TrainSpec(SpecModel):
    epochs: Epochs = 10
    batch_size: BatchSize = 32
    optimizer: SerializeAsAny[OptimizerConfig] = Field(default_factory=SgdConfig)
    schedule: SerializeAsAny[Config] = Field(default_factory=CyclicScheduleConfig)
    warmup: EpochSpan = 0.0
    grad_clip: PositiveWeightOrNone = None
    ema: EmaConfig | None = None
    #: ``auto``: pretrained backbones at :data:`~mtdsl.spec.finetune.PRETRAINED_LR_FACTOR`; ``none``: every part at 1.
    lr_scale: LrScaleConfig | Literal["auto"] | None = "auto"
    #: ``auto``: ``eval`` (keep the backbones' BatchNorm statistics) when every backbone is pretrained.
    batchnorm: Literal["auto", "train", "eval"] = "auto"
    early_stop: EpochsOrNone = None
    sampling: SerializeAsAny[Config] = Field(default_factory=ProportionalSampling)
    epoch: Literal["passes", "weighted"] = "passes"
    weighting: SerializeAsAny[Config] = Field(default_factory=ConstantWeighting)
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    seed: Seed = 0
    workers: Workers = 2
    channels_last: Flag = False
    compile: Flag = False
    on_corrupt: Literal["error", "skip"] = "error"
    track: Trackers = ()
    phases: list[PhaseSpec] = Field(default_factory=list)
    tasks: dict[str, TaskTraining] = Field(default_factory=dict)

    @property
    def total_epochs(self) -> int:
        return sum(phase.epochs for phase in self.phases) if self.phases else self.epochs
