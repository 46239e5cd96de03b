"""Head configs: what ``head = linear(…)``, ``mlp(…)``, ``efficientdet(…)``, ``segmentation(…)``, ``heatmap(…)``.

A head kind's config is registered here in :data:`HEAD_CONFIGS`; the module
that implements it registers its constructor under the same key in
:mod:`mtdsl.nn.heads`. A config says which task kinds it serves and what it
reads: one feature map (``"map"``) or a feature pyramid (``"pyramid"``, for
detection and segmentation heads on a neck). Which heads fit a task kind is the
kind's to say (:attr:`mtdsl.kinds.TaskKind.heads`); ``task_kinds`` reads it back.

>>> heads_for("detect")
['efficientdet']
>>> HEAD_CONFIGS.get("efficientdet").model_validate({"scale": 3}).depth  # EfficientDet-D3's box/class nets
4
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from mtdsl.kinds import TASK_KINDS
from mtdsl.kinds.registry import ServedKinds
from mtdsl.spec.fields import MAX_DEPTH, MAX_HIDDEN_LAYERS, Depth, Flag, Fraction, Hidden
from mtdsl.spec.registry import Config, Registry
from mtdsl.spec.scaling import efficientdet_scaling

Reads = Literal["map", "pyramid"]


class HeadConfig(Config):
    """Base of head configs."""

    kind: str
    task_kinds: ClassVar[ServedKinds] = ServedKinds("heads")
    reads: ClassVar[Reads] = "map"


HEAD_CONFIGS: Registry[HeadConfig] = Registry("head")


def heads_for(task_kind: str) -> list[str]:
    """Head kinds that can serve a task kind, the default first."""
    return TASK_KINDS.heads_for(task_kind)


# ------------------------------------------------------------ classification

Pool = Literal["avg", "max", "avg+max"]


@HEAD_CONFIGS.register("linear")
class LinearHeadConfig(HeadConfig):
    """``linear(pool = avg+max, dropout = 0.2)``: pool the map, then one linear layer."""

    kind: Literal["linear"] = "linear"
    pool: Pool = "avg"
    dropout: Fraction = 0.0


@HEAD_CONFIGS.register("mlp")
class MlpHeadConfig(HeadConfig):
    """``mlp([512, 256], dropout = 0.2)``: hidden layers before the linear one."""

    kind: Literal["mlp"] = "mlp"
    hidden: list[Hidden] = Field(max_length=MAX_HIDDEN_LAYERS)
    pool: Pool = "avg"
    dropout: Fraction = 0.0

    positional = ("hidden",)

    @field_validator("hidden", mode="before")
    @classmethod
    def _one_layer_as_list(cls, value: object) -> object:
        return [value] if isinstance(value, int) else value


# ---------------------------------------------------------------- dense heads

Merge = Literal["sum", "cat"]

#: An anchor's side over its level's stride (EfficientDet uses 4).
MAX_ANCHOR_SCALE = 64.0
#: Octave scales and aspect ratios per level; their product is the anchors per location.
MAX_ANCHOR_SHAPES = 16
#: Width over height of an anchor, between 1:100 and 100:1.
AspectRatio = Annotated[float, Field(ge=0.01, le=100.0)]
MAX_DETECTIONS = 10_000
#: Pyramid levels a segmentation head merges: at most as many as a neck has (levels 1 to 10).
MAX_LEVELS = 10


@HEAD_CONFIGS.register("efficientdet")
class EfficientDetHeadConfig(HeadConfig):
    """``efficientdet(scale = 0, depth = 3, anchor_scale = 4, scales = 3, aspect_ratios = [1, 2, 0.5])``.

    ``scale = d`` sets ``depth`` for EfficientDet-D``d``. Anchors: ``scales`` octave
    sub-scales per level, ``aspect_ratios`` as width / height (2 is a wide 2:1 box; the
    area stays that of the square anchor), ``anchor_scale`` the square anchor's side over
    its level's stride. An anchor is a positive for a box at IoU ``>= match_iou``, background
    below ``background_iou``, and ignored between. Detections: boxes scoring over
    ``score_threshold`` go through class-wise NMS at ``nms_iou``; ``max_detections`` are kept.
    """

    kind: Literal["efficientdet"] = "efficientdet"
    scale: int | None = Field(default=None, ge=0, le=7)
    depth: Depth = 3
    separable: Flag = True
    anchor_scale: float = Field(default=4.0, gt=0.0, le=MAX_ANCHOR_SCALE)
    scales: int = Field(default=3, gt=0, le=MAX_ANCHOR_SHAPES)
    aspect_ratios: list[AspectRatio] = Field(
        default_factory=lambda: [1.0, 2.0, 0.5], min_length=1, max_length=MAX_ANCHOR_SHAPES
    )
    match_iou: float = Field(default=0.5, gt=0.0, le=1.0)
    background_iou: float = Field(default=0.4, ge=0.0, le=1.0)
    score_threshold: float = Field(default=0.05, ge=0.0, lt=1.0)
    nms_iou: float = Field(default=0.5, gt=0.0, le=1.0)
    max_detections: int = Field(default=100, gt=0, le=MAX_DETECTIONS)

    reads = "pyramid"

    @model_validator(mode="before")
    @classmethod
    def _fill_from_scale(cls, values: Any) -> Any:
        if isinstance(values, dict) and isinstance(values.get("scale"), int) and 0 <= values["scale"] <= 7:
            values = {"depth": efficientdet_scaling(values["scale"])["head_depth"], **values}
        return values

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> EfficientDetHeadConfig:
        if self.background_iou > self.match_iou:
            raise ValueError(f"background_iou ({self.background_iou}) must not exceed match_iou ({self.match_iou})")
        return self

    @property
    def anchors_per_location(self) -> int:
        return self.scales * len(self.aspect_ratios)

    @property
    def anchor_shapes(self) -> tuple[tuple[float, float], ...]:
        """``(rx, ry)`` width and height multipliers per aspect ratio, keeping the square anchor's area."""
        return tuple((math.sqrt(ratio), 1 / math.sqrt(ratio)) for ratio in self.aspect_ratios)


@HEAD_CONFIGS.register("segmentation")
class SegmentationHeadConfig(HeadConfig):
    """``segmentation(levels = 3, depth = 1, merge = sum, separable = false)``.

    See :class:`mtdsl.nn.heads.dense.SegmentationHead`.
    """

    kind: Literal["segmentation"] = "segmentation"
    levels: int = Field(default=3, gt=0, le=MAX_LEVELS)
    depth: int = Field(default=1, ge=0, le=MAX_DEPTH)
    merge: Merge = "sum"
    separable: Flag = False

    reads = "pyramid"


#: Image pixels per heatmap cell: 1 (full size) to 32.
MAX_HEATMAP_STRIDE = 32


@HEAD_CONFIGS.register("heatmap")
class HeatmapHeadConfig(HeadConfig):
    """``heatmap(levels = 3, depth = 1, stride = 4, separable = false)``: a heatmap per named point.

    The segmentation head's decoder on the finest ``levels`` of a neck, with one output per point,
    at ``1 / stride`` of the image. See :class:`mtdsl.nn.heads.heatmap.HeatmapHead`.
    """

    kind: Literal["heatmap"] = "heatmap"
    levels: int = Field(default=3, gt=0, le=MAX_LEVELS)
    depth: int = Field(default=1, ge=0, le=MAX_DEPTH)
    stride: int = Field(default=4, gt=0, le=MAX_HEATMAP_STRIDE)
    separable: Flag = False

    reads = "pyramid"
