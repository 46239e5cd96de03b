"""Dataset formats a spec can declare: folder, csv, json, coco, yolo, voc, masks and synthetic.

Each format's config says what it carries (:attr:`DatasetConfig.carries`), and so
which task kinds it serves (:attr:`DatasetConfig.serves`, those that learn from it):
``folder``, ``csv`` and ``json`` carry image labels (classify, binary and
multilabel tasks), ``coco`` boxes, instance masks and keypoints (detect, segment
and keypoints tasks), ``yolo`` boxes and polygons (detect and segment tasks),
``voc`` boxes (detect tasks), ``masks`` class-index masks (segment tasks), and
``synthetic`` all of them (a keypoints task learns its shapes' box corners). A
task on a dataset whose format does not serve its kind is an error of the spec
(:func:`unserved`); the reader of each format is registered under the same name in
:mod:`mtdsl.train.data.formats`.

Paths are kept as written (after ``${var}`` substitution); relative paths are
read from the directory ``mtdsl`` runs in. Nothing is read from disk while
compiling a model: the data is only opened when training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from mtdsl.kinds import TASK_KINDS
from mtdsl.kinds.registry import KindsCarried, Targets
from mtdsl.spec.augment import AugmentConfig
from mtdsl.spec.fields import MAX_SIDE, Flag, Seed
from mtdsl.spec.registry import Config, Registry

#: The synthetic generator draws shapes at least a few pixels wide, so images are at least this side.
MIN_SYNTHETIC_SIDE = 16
MAX_SYNTHETIC_COUNT = 1_000_000

Split = Literal["given"] | list[Annotated[float, Field(le=1.0)]]
#: A value of an 8-bit mask (the lower bound is checked with a message that names the range).
MaskValue = Annotated[int, Field(le=255)]


#: How a picture becomes the model's input: ``letterbox`` keeps its aspect and pads, ``crop`` resizes
#: the shorter side and cuts the centre (a random resized crop in training), ``squash`` stretches it.
ResizePolicy = Literal["letterbox", "crop", "squash"]
RESIZE_POLICIES: tuple[str, ...] = ("letterbox", "crop", "squash")


class DatasetConfig(Config):
    """Base of every dataset format's config: its name, the training augmentation (:mod:`mtdsl.spec.augment`)
    and the resize policy.

    ``augment = None`` (not written) is the default for the tasks the data
    serves; ``augment = []`` trains on the plain resize. ``resize = None`` (not
    written) is ``letterbox`` for a stream with a detect or segment task and
    ``crop`` for one of image-label tasks only (:func:`resize_policy`).

    Class variables:
        carries: what the format has targets of: labels per image, boxes, masks.
        serves: the task kinds that learn from what it carries (read from the kinds).
        holds: what it holds, for messages ("image labels", "boxes").
        unserved_hint: the fix to suggest to a task it cannot serve (default: a format that serves it).
    """

    kind: str
    name: str = ""
    augment: tuple[AugmentConfig, ...] | None = None
    resize: ResizePolicy | None = None

    #: Fields that generated code writes only when set, so a spec without them compiles as before they existed.
    written_when_set: ClassVar[tuple[str, ...]] = ("resize",)
    carries: ClassVar[tuple[Targets, ...]] = ()
    serves: ClassVar[KindsCarried] = KindsCarried()
    holds: ClassVar[str] = ""
    unserved_hint: ClassVar[str | None] = None


DATASETS: Registry[DatasetConfig] = Registry("dataset format")


def resize_policy(config: DatasetConfig, dense: bool) -> str:
    """The dataset's ``resize``, or the default for a stream with (``dense``) or without boxes or masks.

    >>> resize_policy(FolderDataset(root="pets"), dense=False), resize_policy(FolderDataset(root="pets"), dense=True)
    ('crop', 'letterbox')
    """
    if config.resize is not None:
        return config.resize
    return "letterbox" if dense else "crop"


@dataclass(frozen=True)
class Unserved:
    """Why a dataset cannot serve a task: an error's message, expected value and hint."""

    message: str
    expected: str
    hint: str


def formats_serving(task_kind: str) -> list[str]:
    """The registered formats whose readers make targets for ``task_kind`` tasks."""
    return [kind for kind in DATASETS.kinds() if task_kind in DATASETS.get(kind).serves]


def unserved(config: DatasetConfig, dataset: str, task: str, task_kind: str) -> Unserved | None:
    """``None`` when ``config``'s format serves ``task_kind`` tasks, else why not and what to do.

    >>> problem = unserved(FolderDataset(root="pets"), "pets", "box", "detect")
    >>> problem.message
    "folder dataset 'pets' holds image labels, so detect task 'box' cannot learn from it"
    >>> problem.expected
    'a dataset format that serves detect tasks: coco, yolo, voc or synthetic'
    """
    if task_kind in config.serves:
        return None
    formats = formats_serving(task_kind)
    spelled = ", ".join(formats[:-1]) + f" or {formats[-1]}" if len(formats) > 1 else "".join(formats)
    return Unserved(
        f"{config.kind} dataset '{dataset}' holds {config.holds}, so {task_kind} task '{task}' cannot learn from it",
        f"a dataset format that serves {task_kind} tasks: {spelled}",
        config.unserved_hint if TASK_KINDS[task_kind].image_labels and config.unserved_hint else
        f"declare a {formats[0]}(...) dataset and point task '{task}' at it" if formats else
        f"no dataset format serves {task_kind} tasks yet",
    )


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

    carries = ("labels",)
    holds = "image labels"
    split: Split = "given"
    seed: Seed = 0

    positional = ("root",)

    _split = field_validator("split")(_check_split)


def _check_ratio_split(value: object) -> object:
    if value == "given":
        raise ValueError("this format has no split of its own; write ratios, e.g. 0.85/0.15")
    return _check_split(value)


def _check_class_list(value: list[str] | None) -> list[str] | None:
    if value is not None:
        if not value:
            raise ValueError("classes lists at least one class; leave it out to annotate all the task's classes")
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"class '{repeated[0]}' is listed twice")
    return value


class ManifestDataset(DatasetConfig):
    """Fields shared by manifest sources: where the manifest and images are, and which columns to read.

    ``split = given`` reads each image's split from ``split_column``: ``train``,
    ``val`` (or ``valid``, ``validation``) or ``test``.

    Attributes:
        classes: the labels of ``label_column`` this dataset labels (default:
            its ``vocabulary``, else the labels found). A task that joins it
            with other datasets learns their classes too: on this dataset's
            images those are unknown, so a loss masks them out.
        unknown: the cell text that means "not labelled" (``"?"``, say): a
            binary or classify task's cell, or a multilabel task's whole cell,
            that reads it says nothing about the image, and losses and metrics skip it.
            Without it every cell is read as labels (an empty one: none).
    """

    path: str
    images: str
    image_column: str = "file_name"
    label_column: str = "labels"
    split_column: str = "split"
    classes: list[str] | None = None
    unknown: str | None = None
    split: Split = Field(default_factory=lambda: [0.85, 0.15])
    seed: Seed = 0

    positional = ("path",)
    carries = ("labels",)
    holds = "image labels"

    _split = field_validator("split")(_check_split)
    _classes = field_validator("classes")(_check_class_list)

    @field_validator("unknown")
    @classmethod
    def _unknown_is_text(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError('the unknown marker cannot be blank (an empty cell means "no labels"); write e.g. "?"')
        return None if value is None else value.strip()


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


class BoxesDataset(DatasetConfig):
    """Fields shared by the formats that hold boxes (``coco``, ``yolo``, ``voc``).

    Attributes:
        classes: the task classes this dataset annotates, when it labels only
            some of them (default: all). Every one must be a category of the
            dataset. In its images a task class left out is neither present nor
            absent: losses mask it out, so several datasets can train one
            detector on different classes.
        one_class: the name of one class that every box becomes, whatever
            its category (``"pet"`` for the cat and dog heads of
            oxford-pets-3class: a one-class detector whose boxes a
            classification task then labels, thesis §6.5).
        keep_empty: keep images with no box of the annotated classes as
            negatives. Write ``false`` when an image without boxes means "not
            labelled": oxford-pets-3class lists 600 images but boxes the heads of 296.
        seed: the seed of a ratio split.
    """

    classes: list[str] | None = None
    one_class: str | None = None
    keep_empty: Flag = True
    seed: Seed = 0

    carries: ClassVar[tuple[Targets, ...]] = ("boxes",)
    holds = "boxes"

    @model_validator(mode="after")
    def _one_class_alone(self) -> BoxesDataset:
        if self.one_class is not None and self.classes is not None:
            raise ValueError("one_class merges every category into one class; leave out classes")
        return self

    _classes_once = field_validator("classes")(_check_class_list)


@DATASETS.register("coco")
class CocoDataset(BoxesDataset):
    """COCO boxes and instance masks: an ``instances`` JSON file and the folder of its images.

    A detect task's classes are matched to the file's category names (``classes
    = N`` takes all N categories, in category-id order); boxes of categories the
    task does not list are dropped. A segment task's class 0 is the background
    and the others are categories: each image's ``segmentation`` polygons and
    RLEs (crowds too) are painted into one class-index mask, in annotation
    order, crowds as ignored pixels; categories the task does not list stay
    background. A keypoints task's classes are the names of its points, those
    of the category whose ``keypoints`` list them (a ``person_keypoints`` file);
    each image teaches the instance that labels the most of them, and is scored
    against all (:mod:`mtdsl.train.data.formats.coco_points`). ``classes``,
    ``one_class`` and ``keep_empty`` are those of :class:`BoxesDataset`.

    Attributes:
        annotations: the COCO ``instances`` JSON (``bbox`` as ``[x, y, w, h]`` pixels).
        images: the folder the images' ``file_name`` is relative to.
        split: train/val(/test) ratios, e.g. ``0.8/0.2``.
    """

    kind: Literal["coco"] = "coco"
    annotations: str
    images: str
    split: Split = Field(default_factory=lambda: [0.8, 0.2])

    positional = ("annotations",)
    carries = ("boxes", "masks", "points")
    holds = "boxes, instance masks and keypoints"
    unserved_hint = (
        "read the image labels from a csv or json manifest beside the annotations "
        "(coco128 ships annotations/image_labels.csv), or make the task a detect task"
    )

    _split = field_validator("split")(_check_ratio_split)


@DATASETS.register("yolo")
class YoloDataset(BoxesDataset):
    """An Ultralytics (YOLO) dataset: a ``data.yaml`` and a ``labels/`` folder parallel to ``images/``.

    ``data.yaml`` holds ``names`` (a list, or ``{id: name}``), ``train`` and
    ``val`` (and optionally ``test`` and ``path``): each a folder of images, a
    ``.txt`` file listing images, or a list of either, relative to ``path``
    (itself relative to the folder of ``data.yaml``; default that folder). The
    boxes of ``…/images/…/a.jpg`` are in ``…/labels/…/a.txt``, a line per box:
    ``class cx cy w h``, normalised to 0..1 (a polygon ``class x1 y1 x2 y2 …``
    is its bounding box for a detect task). An image without a label file has
    no boxes. A segment task's class 0 is the background and the others are
    ``names``: each polygon is painted into a class mask, in file order.
    ``classes``, ``one_class`` and ``keep_empty`` are those of :class:`BoxesDataset`.

    Attributes:
        data: the ``data.yaml`` file.
        split: ``given`` (the ``train``/``val``/``test`` entries), or ratios over all their images.
    """

    kind: Literal["yolo"] = "yolo"
    data: str
    split: Split = "given"

    positional = ("data",)
    carries = ("boxes", "masks")
    holds = "boxes and polygons"

    _split = field_validator("split")(_check_split)


@DATASETS.register("voc")
class VocDataset(BoxesDataset):
    """A Pascal VOC dataset: ``Annotations/*.xml``, ``JPEGImages/`` and ``ImageSets/Main/{train,val,test}.txt``.

    Each XML file's ``object`` elements give a ``name`` and a ``bndbox`` of
    1-based pixel indices ``xmin ymin xmax ymax``. The classes are the object
    names found, sorted (``classes = 20`` on a task takes them all). ``classes``,
    ``one_class`` and ``keep_empty`` are those of :class:`BoxesDataset`.

    Attributes:
        root: the folder holding ``Annotations/`` (``VOCdevkit/VOC2007``).
        difficult: keep objects marked ``difficult`` as ordinary boxes. By
            default they are dropped, as COCO's crowd regions are: mtdsl's
            detection targets have no "ignore" box.
        split: ``given`` (the image ids of ``ImageSets/Main/train.txt``,
            ``val.txt`` and, when present, ``test.txt``), or ratios over every
            XML file in ``Annotations/``.
    """

    kind: Literal["voc"] = "voc"
    root: str
    difficult: Flag = False
    split: Split = "given"

    positional = ("root",)

    _split = field_validator("split")(_check_split)


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
    carries = ("masks",)
    holds = "class masks"

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
    square, triangle]`` the shape's box, a segment task with ``classes =
    [background, circle, square, triangle]`` its mask, and a keypoints task with ``classes =
    [top_left, top_right, bottom_right, bottom_left]`` the corners of the shape's box.

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

    carries = ("labels", "boxes", "masks", "points")
    holds = "generated shapes"

    _split = field_validator("split")(_check_ratio_split)
