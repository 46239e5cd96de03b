"""Dataset sources a spec can declare: ``folder``, ``csv``, ``json`` and ``synthetic``.

Paths are kept as written (after ``${var}`` substitution); relative paths are
read from the directory ``mtdsl`` runs in. Nothing is read from disk while
compiling a model: the data is only opened when training.
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator

from mtdsl.spec.registry import Config, Registry

Split = Union[Literal["given"], list[float]]


class DatasetConfig(Config):
    kind: str
    name: str = ""


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
    seed: NonNegativeInt = 0

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
    seed: NonNegativeInt = 0

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


@DATASETS.register("synthetic")
class SyntheticDataset(DatasetConfig):
    """Coloured shapes generated deterministically by mtdsl (for demos and tests)."""

    kind: Literal["synthetic"] = "synthetic"
    count: PositiveInt = 512
    size: PositiveInt = 64
    seed: NonNegativeInt = 0
    split: Split = Field(default_factory=lambda: [0.7, 0.15, 0.15])

    _split = field_validator("split")(_check_ratio_split)
