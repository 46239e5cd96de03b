"""The ids ``detections.json`` gives images and classes: the COCO file's own, where the spec trained from one.

COCO tools match results to annotations by ``image_id`` and ``category_id``;
a results file that numbers them 1, 2, 3, … matches nothing in a file whose
categories are 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, … (COCO's own skip numbers) or
whose images have ids like 397133. So when a detect task was trained from
``coco(...)`` datasets whose files are at hand, each class keeps its
category's id, and each image that is an image of such a file keeps its id there.

* Categories: a class takes the id of the category of its name. When the task
  has a class no file names (a ``one_class`` dataset's, say), or two files give
  one name different ids, no class keeps a file's id: the task numbers its
  classes 1..C in order, as before.
* Images: when every predicted image is an image of one of the files (the
  same file on disk as ``images``/``file_name``), each keeps its id there.
  Otherwise all are numbered 1..N in input order: mixing the two could give
  two images one id.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path

from mtdsl.errors import DataError
from mtdsl.kinds import TASK_KINDS
from mtdsl.spec.data import CocoDataset
from mtdsl.spec.document import Spec
from mtdsl.train.data.formats.coco_file import CocoFile, read_coco_file

__all__ = ["SourceIds", "source_ids"]


class SourceIds:
    """The COCO files a spec's detect tasks were trained from, read once, and the ids they give."""

    def __init__(self, spec: Spec, tasks: Sequence[str]) -> None:
        self.spec = spec
        self._files: dict[str, tuple[CocoDataset, CocoFile]] = {}
        for task in tasks:
            for name in self._coco_datasets(task):
                config = spec.datasets[name]
                assert isinstance(config, CocoDataset)
                if config.annotations not in self._files:
                    read = _read_if_there(config.annotations)
                    if read is not None:
                        self._files[config.annotations] = (config, read)

    def _coco_datasets(self, task: str) -> list[str]:
        training = self.spec.train.tasks.get(task)
        names = training.datasets if training is not None else ()
        return [name for name in names if isinstance(self.spec.datasets.get(name), CocoDataset)]

    def category_ids(self, task: str, classes: Sequence[str]) -> list[int] | None:
        """Per class of ``task``, its category id in the task's COCO files; ``None`` when not every class has one."""
        ids: dict[str, set[int]] = {}
        datasets = self._coco_datasets(task)
        if not datasets:
            return None
        for name in datasets:
            config = self.spec.datasets[name]
            assert isinstance(config, CocoDataset)
            if config.annotations not in self._files:
                return None  # a file that is not at hand may number a class otherwise
            if config.one_class is not None:
                continue  # its class stands for every category: no file id is its id
            for category, category_name in self._files[config.annotations][1].categories.items():
                ids.setdefault(category_name, set()).add(category)
        if not all(len(ids.get(name, ())) == 1 for name in classes):
            return None
        return [next(iter(ids[name])) for name in classes]

    def image_ids(self, files: Sequence[Path]) -> list[Hashable] | None:
        """Per image, its id in the COCO file that lists it; ``None`` unless one file lists every image."""
        for config, coco in self._files.values():
            folder = Path(config.images)
            by_path = {_key(folder / file_name): image_id for image_id, file_name in coco.images}
            found = [by_path.get(_key(file)) for file in files]
            if all(image_id is not None for image_id in found):
                return found
        return None


def source_ids(spec: Spec, tasks: Sequence[str]) -> SourceIds:
    """:class:`SourceIds` of the detect tasks (those that learn from boxes) among ``tasks``."""
    return SourceIds(spec, [task for task in tasks if TASK_KINDS[spec.model.tasks[task].kind].targets == "boxes"])


def _read_if_there(path: str) -> CocoFile | None:
    """The checked file, or ``None`` when it is missing or unreadable (predicting far from the training data)."""
    if not Path(path).is_file():
        return None
    try:
        return read_coco_file(path)
    except DataError:
        return None


def _key(path: Path) -> str:
    try:
        return str(path.resolve())
    except OSError:
        return str(path.absolute())
