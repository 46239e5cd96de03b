"""The training spec: what ``train { ... }`` and each task's training keys say.

It is separate from :class:`~mtdsl.spec.model.ModelSpec`: the model compiler
never sees datasets, losses, weights or sampling.
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, SerializeAsAny
from pydantic import model_validator

from mtdsl.nn.losses import LossConfig
from mtdsl.spec.registry import Config, Registry

# ---------------------------------------------------------------- optimizers

OPTIMIZERS: Registry[Config] = Registry("optimizer")


@OPTIMIZERS.register("sgd")
class SgdConfig(Config):
    kind: Literal["sgd"] = "sgd"
    lr: PositiveFloat = 0.01
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    weight_decay: NonNegativeFloat = 1e-4
    nesterov: bool = False


@OPTIMIZERS.register("adamw")
class AdamWConfig(Config):
    kind: Literal["adamw"] = "adamw"
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.05
    betas: tuple[float, float] = (0.9, 0.999)


# ----------------------------------------------------------------- schedules

SCHEDULES: Registry[Config] = Registry("schedule")


@SCHEDULES.register("constant")
class ConstantScheduleConfig(Config):
    kind: Literal["constant"] = "constant"


@SCHEDULES.register("cyclic")
class CyclicScheduleConfig(Config):
    """Triangular cyclic learning rate (Smith 2017), the thesis' default."""

    kind: Literal["cyclic"] = "cyclic"
    base_lr: PositiveFloat = 1e-4
    max_lr: PositiveFloat = 1e-2
    cycle_epochs: PositiveFloat = 4.0

    @model_validator(mode="after")
    def _ordered(self) -> CyclicScheduleConfig:
        if self.base_lr > self.max_lr:
            raise ValueError(f"base_lr ({self.base_lr:g}) must not exceed max_lr ({self.max_lr:g})")
        return self


@SCHEDULES.register("cosine")
class CosineScheduleConfig(Config):
    kind: Literal["cosine"] = "cosine"
    min_lr: NonNegativeFloat = 0.0


@SCHEDULES.register("step")
class StepScheduleConfig(Config):
    kind: Literal["step"] = "step"
    every: PositiveInt = 10
    gamma: float = Field(default=0.1, gt=0.0, le=1.0)

    positional = ("every",)


# ------------------------------------------------------------------ sampling

SAMPLERS: Registry[Config] = Registry("sampling strategy")


class Ramp(BaseModel):
    """``ramp(0.1, 0.2)``: a ratio that moves linearly from start to end over training."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["ramp"] = "ramp"
    start: NonNegativeFloat
    end: NonNegativeFloat

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


RatioValue = Union[NonNegativeFloat, Ramp]


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
    temperature: PositiveFloat = 0.1
    floor: float = Field(default=0.05, ge=0.0, lt=1.0)


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
    temperature: PositiveFloat = 2.0


# -------------------------------------------------------------------- phases


class PhaseSpec(BaseModel):
    """A stretch of training with its own frozen parts: ``phase heads { epochs = 10; freeze = [trunk] }``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    epochs: PositiveInt
    freeze: list[str] = Field(default_factory=list)
    lr: PositiveFloat | None = None


class TaskTraining(BaseModel):
    """The training side of one task block.

    ``datasets`` holds one name for ``detect(coco)`` and several for
    ``detect(pets + coco)``: a task that learns from several datasets, each of
    which may label only some of its classes (thesis §5.3).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    datasets: tuple[str, ...] = Field(min_length=1)
    loss: SerializeAsAny[LossConfig]
    weight: NonNegativeFloat = 1.0
    batch_size: PositiveInt | None = None
    positive: str | None = None
    label: str | None = None
    balanced: bool | None = None
    target: float | None = Field(default=None, gt=0.0, le=1.0)


class TrainSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    optimizer: SerializeAsAny[Config] = Field(default_factory=SgdConfig)
    schedule: SerializeAsAny[Config] = Field(default_factory=CyclicScheduleConfig)
    warmup: NonNegativeFloat = 0.0
    grad_clip: PositiveFloat | None = None
    sampling: SerializeAsAny[Config] = Field(default_factory=ProportionalSampling)
    epoch: Literal["passes", "weighted"] = "passes"
    weighting: SerializeAsAny[Config] = Field(default_factory=ConstantWeighting)
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    seed: NonNegativeInt = 0
    workers: NonNegativeInt = 2
    channels_last: bool = False
    compile: bool = False
    on_corrupt: Literal["error", "skip"] = "error"
    phases: list[PhaseSpec] = Field(default_factory=list)
    tasks: dict[str, TaskTraining] = Field(default_factory=dict)

    @property
    def total_epochs(self) -> int:
        return sum(phase.epochs for phase in self.phases) if self.phases else self.epochs
