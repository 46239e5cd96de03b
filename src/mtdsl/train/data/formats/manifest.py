"""The ``csv`` and ``json`` formats: a manifest with one row (object) per image and its labels in a column (key).

=========  ==========================================  ==============================
format     examples                                    labels of a task
=========  ==========================================  ==============================
csv        rows of the manifest                        the ``label`` column, split
json       objects of the list (or JSON Lines)         the ``label`` key: str or list
=========  ==========================================  ==============================

With ``split = given``, each row's split is its ``split_column`` (``split``):
``train``, ``val`` (``valid``, ``validation``) or ``test``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtdsl.errors import DataError, did_you_mean, listing
from mtdsl.spec.data import CsvDataset, JsonDataset
from mtdsl.train.data.formats.registry import READERS
from mtdsl.train.data.sources import ImageRef, LabelRequest, Table, check_images_exist, describe, read_text


@dataclass(frozen=True)
class Vocabulary:
    """Known labels, some of which may contain the separator (COCO's "dining table")."""

    labels: tuple[str, ...]
    separator: str

    @property
    def longest(self) -> int:
        return max((len(label.split(self.separator)) for label in self.labels), default=1)

    def split(self, cell: str) -> list[str] | str:
        """The labels of ``cell``, longest match first; the first unknown word when one is not in the vocabulary."""
        words = [word.strip() for word in cell.split(self.separator) if word.strip()]
        known = set(self.labels)
        found: list[str] = []
        position = 0
        while position < len(words):
            for length in range(min(self.longest, len(words) - position), 0, -1):
                candidate = self.separator.join(words[position : position + length])
                if candidate in known:
                    found.append(candidate)
                    position += length
                    break
            else:
                return words[position]
        return found


def read_vocabulary(path: str, separator: str, where: str) -> Vocabulary:
    """One label per line of ``path``; blank lines are skipped."""
    text = read_text(path, where, "a vocabulary file with one label per line")
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not labels:
        raise DataError(f"{where}: the vocabulary file {path} is empty", expected="one label per line")
    return Vocabulary(labels, separator)


def _csv_rows(config: CsvDataset, where: str) -> list[dict[str, object]]:
    text = read_text(config.path, where, "a CSV file with a header row")
    try:
        return list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise DataError(f"{where}: {config.path} is not a readable CSV file ({error})",
                        expected="a CSV file with a header row, one row per image") from None


def _json_rows(config: JsonDataset, where: str) -> list[dict[str, object]]:
    text = read_text(config.path, where, "a JSON list of objects, or JSON Lines (.jsonl)")
    try:
        if config.path.endswith(".jsonl"):
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{where}: {config.path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}",
            expected="a JSON list of objects, or one object per line in a .jsonl file",
        ) from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise DataError(
            f"{where}: {config.path} must hold a list of objects, e.g. "
            '[{"file_name": "a.jpg", "labels": ["cat"]}]',
            hint="write one object per image; use a .jsonl file for one object per line",
        )
    return rows


def _cell_labels(value: object, separator: str | None, vocabulary: Vocabulary | None) -> list[str] | str:
    """Label strings of one cell; a string result is an unknown word (see :meth:`Vocabulary.split`)."""
    if value is None:
        return []
    if isinstance(value, bool | int):
        return [str(int(value))]
    if isinstance(value, list):
        return [str(int(v)) if isinstance(v, bool | int) else str(v).strip() for v in value]
    text = str(value)
    if separator is None:
        return [text.strip()] if text.strip() else []
    if vocabulary is not None:
        return vocabulary.split(text)
    return [word.strip() for word in text.split(separator) if word.strip()]


def _check_columns(rows: list[dict[str, object]], needed: list[str], where: str, what: str) -> None:
    present = set(rows[0])
    for index, row in enumerate(rows):
        missing = [column for column in needed if column not in row]
        if missing:
            column = missing[0]
            raise DataError(
                f"{where} has no {what} '{column}'" + (f" in entry {index}" if what == "key" else ""),
                expected=f"a {what}: {listing(present)}",
                hint=did_you_mean(column, present)
                or "set image_column/label_column/split_column, or label = … on the task",
            )


def _check_files(paths: list[str], images: str, where: str) -> None:
    if not Path(images).is_dir():
        raise DataError(
            f"{where}: the images folder {images} does not exist",
            expected="the folder the manifest's file names are relative to",
        )
    check_images_exist(paths, where, expected=f"every listed file under {images}",
                       hint="check 'images' (the folder the file names are relative to) and 'image_column'")


def _cell_words(value: object, separator: str | None) -> list[str]:
    """The stripped words of a cell, before any vocabulary matching (to spot the ``unknown`` marker)."""
    if isinstance(value, list):
        return [str(item).strip() for item in value]
    if not isinstance(value, str):
        return []
    if separator is None:
        return [value.strip()]
    return [word.strip() for word in value.split(separator) if word.strip()]


def _column_labels(
    config: CsvDataset | JsonDataset,
    rows: list[dict[str, object]],
    column: str,
    separator: str | None,
    vocabulary: Vocabulary | None,
) -> list[list[str] | None]:
    """Each row's labels in ``column``; ``None`` for a cell that holds the dataset's ``unknown`` marker."""
    cells: list[list[str] | None] = []
    for row in rows:
        if config.unknown is not None and config.unknown in (words := _cell_words(row[column], separator)):
            if len(words) > 1:
                raise DataError(
                    f"{describe(config)}: the '{column}' cell of {row[config.image_column]} mixes the unknown "
                    f"marker '{config.unknown}' with labels: {', '.join(w for w in words if w != config.unknown)}",
                    expected=f"either the image's labels or '{config.unknown}' alone (not labelled)",
                    hint=f"write '{config.unknown}' alone when the image is not labelled, or only its labels",
                )
            cells.append(None)
            continue
        found = _cell_labels(row[column], separator, vocabulary)
        if isinstance(found, str):
            path = getattr(config, "vocabulary", None)
            raise DataError(
                f"{describe(config)}: label '{found}' of {row[config.image_column]} is not in the vocabulary {path}",
                expected=f"a label listed in {path}",
                hint=did_you_mean(found, vocabulary.labels) if vocabulary else None,
            )
        cells.append(found)
    return cells


def _read_manifest(
    config: CsvDataset | JsonDataset,
    tasks: Sequence[LabelRequest],
    rows: list[dict[str, object]],
    separator: str | None,
    vocabulary: Vocabulary | None,
    what: str,
) -> Table:
    where = describe(config)
    if not rows:
        raise DataError(f"{where}: {config.path} lists no images", expected="one entry per image")
    columns = {task.task: task.label or config.label_column for task in tasks}
    given = [config.split_column] if config.split == "given" else []
    _check_columns(rows, [config.image_column, *dict.fromkeys(columns.values()), *given], where, what)
    folder = Path(config.images)
    images: list[ImageRef] = [str(folder / str(row[config.image_column])) for row in rows]
    _check_files(images, config.images, where)  # type: ignore[arg-type]

    labels = {
        task: _column_labels(config, rows, column, separator, vocabulary if column == config.label_column else None)
        for task, column in columns.items()
    }
    found_labels = {
        task: tuple(sorted({label for cell in cells if cell is not None for label in cell}))
        for task, cells in labels.items()
    }
    spaces = {}
    for task in labels:
        if columns[task] == config.label_column and config.classes is not None:
            spaces[task] = tuple(config.classes)
        elif columns[task] == config.label_column and vocabulary:
            spaces[task] = vocabulary.labels
        else:
            spaces[task] = found_labels[task]
    parts = given_split(config, rows, where) if config.split == "given" else None
    return Table(images, labels, spaces, exact=False, parts=parts, where=where)


#: The split names a split column may hold, and the split each one is.
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def given_split(config: CsvDataset | JsonDataset, rows: list[dict[str, object]], where: str) -> dict[str, np.ndarray]:
    """``split = given``: the row indices of each split, read from the ``split_column`` of every row.

    Raises:
        DataError: at the row's line (CSV, JSON Lines) or entry (JSON), a
            split name that is not ``train``, ``val`` (``valid``,
            ``validation``) or ``test``; or no train or no val row at all.
    """
    found: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for index, row in enumerate(rows):
        value = row[config.split_column]
        name = SPLIT_NAMES.get(str(value).strip().lower()) if isinstance(value, str) else None
        if name is None:
            raise DataError(
                f"{where}: {_row_place(config, index)}: {config.split_column} is {value!r:.40}, which names no split",
                expected=f"one of {', '.join(SPLIT_NAMES)}",
                hint=did_you_mean(str(value), SPLIT_NAMES) or f"write train, val or test in the {config.split_column} "
                "of every row, or draw a ratio split instead, e.g. split = 0.85/0.15",
            )
        found[name].append(index)
    for name in ("train", "val"):
        if not found[name]:
            raise DataError(
                f"{where}: split = given, but no row of {config.path} has {config.split_column} {name}",
                expected=f"rows of each split in the {config.split_column} column: train, val and optionally test",
                hint="mark some rows val (or valid), or draw a ratio split instead, e.g. split = 0.85/0.15",
            )
    return {name: np.array(indices, dtype=np.int64) for name, indices in found.items() if indices}


def _row_place(config: CsvDataset | JsonDataset, index: int) -> str:
    """Where row ``index`` of a manifest is: ``path:line`` for CSV and JSON Lines, ``path entry N`` for JSON."""
    text = read_text(config.path, describe(config), "a manifest")
    if isinstance(config, CsvDataset):
        reader = csv.DictReader(io.StringIO(text, newline=""))
        for position, _ in enumerate(reader):
            if position == index:
                return f"{config.path}:{reader.line_num}"
    elif config.path.endswith(".jsonl"):
        lines = [number for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
        return f"{config.path}:{lines[index]}"
    return f"{config.path} entry {index}"


@READERS.register("csv")
def read_csv(config: CsvDataset, tasks: Sequence[LabelRequest]) -> Table:
    """A CSV manifest; labels are ``separator``-separated, matched against ``vocabulary`` when given."""
    where = describe(config)
    vocabulary = read_vocabulary(config.vocabulary, config.separator, where) if config.vocabulary else None
    return _read_manifest(config, tasks, _csv_rows(config, where), config.separator, vocabulary, "column")


@READERS.register("json")
def read_json(config: JsonDataset, tasks: Sequence[LabelRequest]) -> Table:
    """A JSON list of objects (or JSON Lines); a label is a string or a list of strings."""
    return _read_manifest(config, tasks, _json_rows(config, describe(config)), None, None, "key")
