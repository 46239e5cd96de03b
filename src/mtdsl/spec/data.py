"""Dataset sources a spec can declare: ``folder``, ``csv``, ``json``, ``coco``, ``masks`` and ``synthetic``.

``folder``, ``csv`` and ``json`` carry image labels (classify, binary and
multilabel tasks), ``coco`` carries boxes (detect tasks), ``masks`` carries
class-index masks (segment tasks), and ``synthetic`` carries all of them.

Paths are kept as written (after ``${var}`` substitution); relative paths are
read from the directory ``mtdsl`` runs in. Nothing is read from disk while
compiling a model: the data is only opened when training.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from mtdsl.spec.augment import AugmentConfig
from mtdsl.spec.fields import MAX_SIDE, Flag, Seed
from mtdsl.spec.registry import Config, Registry

#: The synthetic generator draws shapes at least a few pixels wide, so images are at least this side.
MIN_SYNTHETIC_SIDE = 16
MAX_SYNTHETIC_COUNT = 1_000_000

Split = Literal["given"] | list[Annotated[float, Field(le=1.0)]]
#: A value of an 8-bit mask (the lower bound is checked with a message that names the range).
MaskValue = Annotated[int, Field(le=255)]


class DatasetConfig(Config):
    """Fields every source has: its name, and the training augmentation (:mod:`mtdsl.spec.augment`).

    ``augment = None`` (not written) is the default for the tasks the data
    serves; ``augment = []`` trains on the plain resize.
    """

    kind: str
    name: str = ""
    augment: tuple[AugmentConfig, ...] | None = None


DATASETS: Registry[DatasetConfig] = Registry("dataset source")


def _check_split(value: object) -> object:
    if isinstance(value, list):
        if len(value) not in (2, 3):
            raise ValueError("a split has 2 or 3 parts: train/val or train/val/test, e.g. 0.65/0.10/0.25")
        if any(part < 0 for part in value):
            raise ValueError("split parts cannot be negative")
        if abs(sum(value) - 1.0) > 1e-6:
            raise ValueError(f"split parts must sum to 1, they sum to {sum(value):g}")
    return value


@DATASETS.register("folder")
class FolderDataset(DatasetConfig):
    """Images in one subfolder per class; ``split = given`` reads ``train/``, ``val/`` (or ``valid/``) and ``test/``."""

    kind: Literal["folder"] = "folder"
    root: str
    split: Split = "given"
    seed: Seed = 0

    positional = ("root",)

    _split = field_validator("split")(_check_split)


def _check_ratio_split(value: object) -> object:
    if value == "given":
        raise ValueError("only folder datasets have a given split; write ratios, e.g. 0.85/0.15")
    return _check_split(value)


class ManifestDataset(DatasetConfig):
    """Fields shared by manifest sources: where the manifest and images are, and which columns to read."""

    path: str
    images: str
    image_column: str = "file_name"
    label_column: str = "labels"
    split: Split = Field(default_factory=lambda: [0.85, 0.15])
    seed: Seed = 0

    positional = ("path",)

    _split = field_validator("split")(_check_ratio_split)


@DATASETS.register("csv")
class CsvDataset(ManifestDataset):
    """A manifest: one row per image, labels in a column (``separator``-separated for multi-label).

    ``vocabulary`` names a file with one label per line; labels that contain the
    separator (COCO's "dining table") are then matched against it.
    """

    kind: Literal["csv"] = "csv"
    separator: str = " "
    vocabulary: str | None = None


@DATASETS.register("json")
class JsonDataset(ManifestDataset):
    """A JSON manifest: a list of objects, one per image (or JSON Lines when the path ends in ``.jsonl``).

    An object's label is a string (one label) or a list of strings.
    """

    kind: Literal["json"] = "json"


@DATASETS.register("coco")
class CocoDataset(DatasetConfig):
    """COCO detection boxes: an ``instances`` JSON file and the folder its ``file_name`` entries are relative to.

    A detect task's classes are matched to the file's category names (``classes
    = N`` takes all N categories, in category-id order); boxes of categories the
    task does not list are dropped.

    Attributes:
        annotations: the COCO ``instances`` JSON (``bbox`` as ``[x, y, w, h]`` pixels).
        images: the folder the images' ``file_name`` is relative to.
        classes: the task classes this dataset annotates, when it labels only
            some of them (default: all). Every one must be a category of the
            file. In its images a task class left out is neither present nor
            absent: losses mask it out, so several datasets can train one
            detector on different classes.
        one_class: the name of one class that every box becomes, whatever
            its category (``"pet"`` for the cat and dog heads of
            oxford-pets-3class: a one-class detector whose boxes a
            classification task then labels, thesis §6.5).
        keep_empty: keep images with no box of the annotated classes as
            negatives. Write ``false`` when an image without boxes means "not
            labelled": oxford-pets-3class lists 600 images but boxes the heads of 296.
        split: train/val(/test) ratios, e.g. ``0.8/0.2``.
        seed: the seed of the split.
    """

    kind: Literal["coco"] = "coco"
    annotations: str
    images: str
    classes: list[str] | None = None
    one_class: str | None = None
    keep_empty: Flag = True
    split: Split = Field(default_factory=lambda: [0.8, 0.2])
    seed: Seed = 0

    positional = ("annotations",)

    _split = field_validator("split")(_check_ratio_split)

    @model_validator(mode="after")
    def _one_class_alone(self) -> CocoDataset:
        if self.one_class is not None and self.classes is not None:
            raise ValueError("one_class merges every category into one class; leave out classes")
        return self

    @field_validator("classes")
    @classmethod
    def _classes_once(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("classes lists at least one class; leave it out to annotate all the task's classes")
            repeated = sorted({name for name in value if value.count(name) > 1})
            if repeated:
                raise ValueError(f"class '{repeated[0]}' is listed twice")
        return value


def _check_mask_value(value: int) -> int:
    if not 0 <= value <= 255:
        raise ValueError(f"mask values are 0..255, got {value}")
    return value


@DATASETS.register("masks")
class MasksDataset(DatasetConfig):
    """Images with single-channel PNG masks of class indices, paired by file stem.

    ``split = given`` reads ``images/train``, ``images/val`` (or ``valid``) and
    optionally ``images/test``, with the masks under the same subfolders of
    ``masks``; CamVid's layout::

        dataset camvid = masks(images = "camvid/images", masks = "camvid/masks",
                               classes = "camvid/classes.txt", ignore = [11])

    Attributes:
        images: the images folder.
        masks: the masks folder: ``<image stem>.png`` per image, 8-bit (mode L or P).
        classes: the class names, as a list or the path of a ``classes.txt``
            (one name a line, or ``<value> <name>`` lines). Without
            ``class_map``, the name on line ``v`` is the class of mask value ``v``
            and ignored values drop out (CamVid's ``11 Unlabelled`` with ``ignore
            = [11]`` leaves 11 classes). Without ``classes`` the segment task's
            own classes name the values ``0 … N-1``.
        class_map: the mask value(s) of each class, in class order: ``[2, 1]``
            makes value 2 class 0 and value 1 class 1 (a class may take a list
            of values: ``[0, [1, 3]]``).
        ignore: mask values that no loss or metric counts (void). A mask
            value that is neither a class's nor ignored is an error when met,
            so a wrong ``classes`` or ``class_map`` does not go unnoticed.
        split: ``given``, or train/val(/test) ratios.
        seed: the seed of a ratio split.
    """

    kind: Literal["masks"] = "masks"
    images: str
    masks: str
    classes: list[str] | str | None = None
    class_map: list[MaskValue | list[MaskValue]] | None = None
    ignore: list[MaskValue] = Field(default_factory=list)
    split: Split = "given"
    seed: Seed = 0

    positional = ("images", "masks")

    _split = field_validator("split")(_check_split)

    @field_validator("ignore")
    @classmethod
    def _ignore_values(cls, value: list[int]) -> list[int]:
        return [_check_mask_value(v) for v in value]

    @field_validator("class_map")
    @classmethod
    def _class_map_values(cls, value: list[int | list[int]] | None) -> list[int | list[int]] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("class_map names the mask value(s) of at least one class")
        seen: set[int] = set()
        for entry in value:
            for raw in entry if isinstance(entry, list) else [entry]:
                if _check_mask_value(raw) in seen:
                    raise ValueError(f"mask value {raw} is given to two classes")
                seen.add(raw)
        return value

    @model_validator(mode="after")
    def _ignored_is_not_mapped(self) -> MasksDataset:
        for raw in self.ignore:
            if raw in self.mask_values():
                raise ValueError(f"mask value {raw} is both in class_map and ignored; keep it in one of them")
        return self

    def mask_values(self) -> dict[int, int]:
        """``{mask value: class index}`` from ``class_map`` (empty without one)."""
        return {
            raw: index
            for index, entry in enumerate(self.class_map or [])
            for raw in (entry if isinstance(entry, list) else [entry])
        }


@DATASETS.register("synthetic")
class SyntheticDataset(DatasetConfig):
    """Coloured shapes generated deterministically by mtdsl (for demos and tests).

    One image serves every task kind: classify/binary tasks learn a field
    (``shape``, ``colour``, ``large``), a detect task with ``classes = [circle,
    square, triangle]`` the shape's box, and a segment task with ``classes =
    [background, circle, square, triangle]`` its mask.

    Attributes:
        count: how many images.
        size: their side in pixels.
        seed: the generator's seed (also the split's).
        split: train/val(/test) ratios.
    """

    kind: Literal["synthetic"] = "synthetic"
    count: int = Field(default=512, gt=0, le=MAX_SYNTHETIC_COUNT)
    size: int = Field(default=64, ge=MIN_SYNTHETIC_SIDE, le=MAX_SIDE)
    seed: Seed = 0
    split: Split = Field(default_factory=lambda: [0.7, 0.15, 0.15])

    _split = field_validator("split")(_check_ratio_split)
