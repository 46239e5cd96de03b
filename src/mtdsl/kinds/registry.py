"""What a task kind is, and the one table of them: :data:`TASK_KINDS`.

A task kind (``classify``, ``detect``, …) is one registered unit, the way timm
pairs a model name with its config and builder. Its folder, ``mtdsl/kinds/<kind>/``,
holds one module per layer:

``kind.py``
    a :class:`TaskKind`: the facts the torch-free front end asks about (what it
    learns from, its classes, the heads and losses that fit it), registered here.
``train.py``, ``render.py``, ``predict.py``, ``export.py``
    its training side (its metric, its targets, its pictures), how an image-label
    kind words a prediction, what ``mtdsl predict`` makes of its outputs, and what
    an exported model returns for it: each registered in its layer's tables
    (:class:`KindTable`) under the kind's name.

The rest of the code asks the kind (``TASK_KINDS[task.kind].dense``) or looks it
up in a table instead of comparing its name, so adding a kind touches its folder
plus one line per layer (``mtdsl/kinds/__init__.py``, ``train/kinds.py``,
``render/kinds.py``, ``predict/kinds.py``, ``export/kinds.py``); see docs/task_kinds.md.

>>> DEMO = KindRegistry("demo kind")
>>> _ = DEMO.register(TaskKind("count", "how many objects", heads=("linear",), losses=("mse",)))
>>> DEMO["count"].image_labels, DEMO["count"].dense, DEMO.default_head("count")
(True, False, 'linear')
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

__all__ = ["TASK_KINDS", "KindRegistry", "KindTable", "KindsCarried", "ServedKinds", "Targets", "TaskKind"]

#: What a kind learns from: labels per image, boxes on it, a class per pixel, or named points on it.
Targets = Literal["labels", "boxes", "masks", "points"]


@dataclass(frozen=True)
class TaskKind:
    """One task kind's facts, for the front end and every layer that asks.

    Attributes:
        name: what a spec writes (``classify(pets)``).
        summary: one line for listings and docs.
        heads: the head kinds that fit it; the first is the default.
        losses: the loss kinds that fit it; the first is the default.
        targets: what it learns from. Boxes, masks and points move with the pixels, so
            such a kind is dense: its images are letterboxed to a square and
            augmented only by ops that move them too.
        no_classes: ``None`` when the task lists its classes, else why it has none
            and the fix, for a task that lists them anyway.
        one_class: why one class cannot work, and the fix; ``None`` when one is fine.
        yes_no: one yes/no output: ``positive`` and ``balanced`` apply to it.
        dice: ``cross_entropy(dice = …)`` applies to it.
        crops: its boxes may be cropped for image-label tasks (``crops = [...]``).
        joins_by_class_name: a task that learns from several datasets matches each
            one's labels to its classes by name, so it must name them.
    """

    name: str
    summary: str
    heads: tuple[str, ...]
    losses: tuple[str, ...]
    targets: Targets = "labels"
    no_classes: tuple[str, str] | None = None
    one_class: tuple[str, str] | None = None
    yes_no: bool = False
    dice: bool = False
    crops: bool = False
    joins_by_class_name: bool = True

    @property
    def image_labels(self) -> bool:
        """It learns one label (or a few) per image."""
        return self.targets == "labels"

    @property
    def dense(self) -> bool:
        """Its targets move with the pixels (boxes, masks, points)."""
        return self.targets != "labels"

    @property
    def takes_classes(self) -> bool:
        return self.no_classes is None

    def num_outputs(self, classes: int) -> int:
        """Outputs of its head for a task of ``classes`` classes."""
        return 1 if self.yes_no else classes


class KindRegistry(Mapping[str, TaskKind]):
    """Task kinds by name, in registration order; a read-only mapping otherwise.

    It is keyed like a :class:`~mtdsl.spec.registry.Registry` (``what``, ``in``,
    :meth:`kinds`), so a :class:`~mtdsl.spec.registry.Builders` of a layer can be
    bound to it: each kind's folder then registers its implementation there.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._kinds: dict[str, TaskKind] = {}

    def register(self, kind: TaskKind) -> TaskKind:
        if kind.name in self._kinds:
            raise ValueError(f"{self.what} '{kind.name}' is registered twice")
        self._kinds[kind.name] = kind
        return kind

    def kinds(self) -> list[str]:
        return list(self._kinds)

    def where(self, fact: Callable[[TaskKind], bool]) -> tuple[str, ...]:
        """The names of the kinds of which ``fact`` holds, in registration order."""
        return tuple(name for name, kind in self._kinds.items() if fact(kind))

    def spelled(self, fact: Callable[[TaskKind], bool]) -> str:
        """Those names for a message: ``detect``, ``detect and segment``."""
        names = self.where(fact)
        return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + f" and {names[-1]}"

    def heads_for(self, name: str) -> list[str]:
        return list(self._kinds[name].heads) if name in self._kinds else []

    def losses_for(self, name: str) -> list[str]:
        return list(self._kinds[name].losses) if name in self._kinds else []

    def default_head(self, name: str) -> str:
        return self._kinds[name].heads[0]

    def __getitem__(self, name: str) -> TaskKind:
        return self._kinds[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)


#: Every task kind, filled by importing :mod:`mtdsl.kinds` (each kind's ``kind.py`` registers itself).
TASK_KINDS = KindRegistry("task kind")


class ServedKinds:
    """``task_kinds`` of a head or loss config class: the kinds that list it among their ``heads`` (``losses``).

    The kind owns the pairing, so a config class reads it back rather than repeating it.
    """

    def __init__(self, field: Literal["heads", "losses"]) -> None:
        self.field = field

    def __get__(self, instance: object, owner: Any) -> frozenset[str]:
        kind = owner.model_fields["kind"].default
        return frozenset(TASK_KINDS.where(lambda task_kind: kind in getattr(task_kind, self.field)))


class KindsCarried:
    """``serves`` of a dataset format class: the task kinds that learn from what it carries (its ``carries``)."""

    def __get__(self, instance: object, owner: Any) -> tuple[str, ...]:
        return TASK_KINDS.where(lambda kind: kind.targets in owner.carries)


EntryT = TypeVar("EntryT")


class KindTable(Mapping[str, EntryT], Generic[EntryT]):
    """What one layer keeps per task kind (its metric class, its target encoder, …), keyed by kind name.

    Each kind's folder registers its entry (``METRICS.register(CLASSIFY.name)(AccuracyMetric)``)
    in a module of that layer; ``loads`` names the module that imports all of those (one line per
    kind), and the first lookup imports it, so a table is complete however it was reached. A test
    asserts :meth:`missing` is empty for every table.

    >>> DEMO = KindTable("demo metric", loads="mtdsl.kinds")
    >>> _ = DEMO.register("classify")(len)
    >>> DEMO["classify"]("abc"), DEMO.missing(lambda kind: kind.yes_no)
    (3, ['binary'])
    """

    def __init__(self, what: str, loads: str) -> None:
        self.what = what
        self.loads = loads
        self._entries: dict[str, EntryT] = {}
        self._loaded = False

    def register(self, kind: str) -> Callable[[EntryT], EntryT]:
        def decorate(entry: EntryT) -> EntryT:
            if kind not in TASK_KINDS:
                raise ValueError(f"{self.what} for '{kind}', which is not a registered task kind")
            if kind in self._entries:
                raise ValueError(f"task kind '{kind}' has two {self.what}s")
            self._entries[kind] = entry
            return entry

        return decorate

    def _load(self) -> dict[str, EntryT]:
        if not self._loaded:
            self._loaded = True  # before the import: the modules it loads register here
            importlib.import_module(self.loads)
        return self._entries

    def missing(self, needs: Callable[[TaskKind], bool] = lambda kind: True) -> list[str]:
        """The kinds that ``needs`` an entry (every kind by default) and have none."""
        return [name for name in TASK_KINDS.where(needs) if name not in self._load()]

    def __getitem__(self, kind: str) -> EntryT:
        return self._load()[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())
