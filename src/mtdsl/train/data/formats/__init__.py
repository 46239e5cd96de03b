"""One reader per dataset format, found by the format's name.

Each module here reads one format into a :class:`~mtdsl.train.data.sources.Table`:
:mod:`.folder`, :mod:`.manifest` (``csv``, ``json``), :mod:`.synthetic`,
:mod:`.coco` and :mod:`.masks`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mtdsl.errors import DataError, listing
from mtdsl.spec.data import DatasetConfig
from mtdsl.train.data.formats.coco import read_coco_dataset
from mtdsl.train.data.formats.folder import read_folder
from mtdsl.train.data.formats.manifest import read_csv, read_json
from mtdsl.train.data.formats.masks import read_mask_dataset
from mtdsl.train.data.formats.synthetic import read_synthetic
from mtdsl.train.data.sources import LabelRequest, Table

__all__ = ["DENSE_READERS", "READERS", "read_table"]

READERS: dict[str, Callable[..., Table]] = {
    "folder": read_folder,
    "csv": read_csv,
    "json": read_json,
    "synthetic": read_synthetic,
}


def read_table(config: DatasetConfig, tasks: Sequence[LabelRequest]) -> Table:
    """Every example of ``config`` with each task's labels."""
    reader = READERS.get(config.kind)
    if reader is None:
        raise DataError(f"no reader for dataset kind '{config.kind}'", expected=f"one of: {listing(READERS)}")
    return reader(config, tasks)


#: Readers of the dataset kinds that carry boxes or masks only (``synthetic`` goes through :func:`synthetic_targets`).
DENSE_READERS = {"coco": read_coco_dataset, "masks": read_mask_dataset}
