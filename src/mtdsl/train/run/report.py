"""A run's written record: the per-epoch ``metrics.jsonl`` log and the final results table.

The results table has a row per task and a column per metric (blank where a
metric does not apply to a task), the task's main metric in bold, a ``main``
column repeating it, and a last ``mean (main)`` row holding the model-selection
score::

    task         accuracy  balanced_accuracy  top5    main
    shape        0.9000    0.8800             0.9900  0.9000
    large        0.8500    0.8000                     0.8000
    mean (main)                                       0.8500

JSON files hold ``null`` where a metric is ``nan`` (undefined), so they stay
strict JSON that any reader accepts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table

from mtdsl.files import write_atomic
from mtdsl.train.metrics.selection import mean_main

MEAN_ROW = "mean (main)"


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (nan, ±inf) replaced by ``None``, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def _metric_names(results: dict[str, dict[str, float]]) -> list[str]:
    """Every metric name across tasks, in order of first appearance."""
    return list(dict.fromkeys(name for metrics in results.values() for name in metrics))


def _grid(
    results: dict[str, dict[str, float]], mains: dict[str, str], number: Callable[[float, bool], str]
) -> tuple[list[str], list[list[str]]]:
    """The table's header and rows of cells, numbers formatted by ``number(value, is_main)``.

    Per-class values (``AP/car``, ``iou/road``) stay in ``results.json``; the table keeps one column per metric.
    """
    names = [name for name in _metric_names(results) if "/" not in name]
    rows = []
    for task, metrics in results.items():
        main = mains.get(task)
        cells = [number(metrics[name], name == main) if name in metrics else "" for name in names]
        rows.append([task, *cells, number(metrics[main], True) if main in metrics else ""])
    mean = mean_main(results, {task: main for task, main in mains.items() if task in results})
    rows.append([MEAN_ROW, *[""] * len(names), number(mean, True)])
    return ["task", *names, "main"], rows


def results_title(spec_name: str, what: str, split: str, splits: dict[str, str | None]) -> str:
    """The results table's title, naming the tasks evaluated on val for want of a ``split`` split.

    >>> results_title("pets", "best epoch 3", "test", {"breed": "test", "heads": "val"})
    'pets: test split, best epoch 3 (heads: val split, no test split in its data)'
    """
    elsewhere = sorted(task for task, used in splits.items() if used != split)
    title = f"{spec_name}: {split} split, {what}"
    if elsewhere:
        their = "its" if len(elsewhere) == 1 else "their"
        title += f" ({', '.join(elsewhere)}: val split, no {split} split in {their} data)"
    return title


def results_table(results: dict[str, dict[str, float]], mains: dict[str, str], title: str) -> Table:
    """A rich table of per-task results: each task's main metric, its value, then its other metrics.

    One row per task keeps the table narrow however many kinds of task the spec mixes
    (classification accuracies, COCO AP, mIoU); the mean of the mains comes last.

    Args:
        results: ``{task: {metric: value}}``.
        mains: ``{task: main metric name}``; tasks absent from ``results`` are ignored.
        title: shown above the table.
    """
    table = Table(title=title)
    table.add_column("task")
    table.add_column("main")
    table.add_column("value", justify="right")
    table.add_column("other metrics")
    for task, metrics in results.items():
        main = mains.get(task)
        others = "  ".join(f"{name} {value:.4f}" for name, value in metrics.items() if name != main and "/" not in name)
        value = f"[bold]{metrics[main]:.4f}[/bold]" if main in metrics else ""
        table.add_row(task, main or "", value, others)
    table.add_section()
    mean = mean_main(results, {task: main for task, main in mains.items() if task in results})
    table.add_row(MEAN_ROW, "", f"[bold]{mean:.4f}[/bold]", "")
    return table


def results_markdown(results: dict[str, dict[str, float]], mains: dict[str, str]) -> str:
    """The results table as GitHub markdown, numbers to 4 decimals, main metrics in bold."""
    header, rows = _grid(results, mains, lambda value, main: f"**{value:.4f}**" if main else f"{value:.4f}")
    lines = [header, ["---", *["---:"] * (len(header) - 1)], *rows]
    return "".join("| " + " | ".join(cells) + " |\n" for cells in lines)


def write_results(results: dict[str, dict[str, float]], mains: dict[str, str], path_stem: Path) -> list[Path]:
    """Write ``<stem>.json`` (exact numbers) and ``<stem>.md`` (a 4-decimal table), each atomically.

    The JSON holds ``{"metrics": results, "mains": {task: name}, "main": {task: value}, "mean": value}``,
    the same shape as a ``test`` record of ``metrics.jsonl`` plus the main metrics' names.

    Returns:
        The paths written: the ``.json`` file, then the ``.md`` file.
    """
    path_stem = Path(path_stem)
    scored = {task: main for task, main in mains.items() if task in results}
    summary = {
        "metrics": results,
        "mains": scored,
        "main": {task: results[task][main] for task, main in scored.items()},
        "mean": mean_main(results, scored),
    }
    text = json.dumps(_json_safe(summary), indent=2) + "\n"
    return [
        write_atomic(path_stem.with_name(path_stem.name + ".json"), text),
        write_atomic(path_stem.with_name(path_stem.name + ".md"), results_markdown(results, mains)),
    ]


class MetricsLog:
    """A run's ``metrics.jsonl``: one JSON record per line, appended as training goes.

    Each record is written and flushed as one line, so a crash loses at most the
    line being written; ``read`` skips such a torn last line.

    Args:
        path: the log file; its folder is created when absent.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        """Add one record as a line (non-finite floats become ``null``)."""
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(_json_safe(record)) + "\n")
            file.flush()

    @classmethod
    def read(cls, path: Path) -> list[dict[str, Any]]:
        """Every record in the log, oldest first; no records when the file does not exist.

        Raises:
            ValueError: a line other than the last is not valid JSON.
        """
        path = Path(path)
        if not path.exists():
            return []
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        records = []
        for number, line in enumerate(lines, start=1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                if number == len(lines):
                    break  # torn by a crash mid-write: the run resumes from before it anyway
                raise ValueError(f"{path}:{number}: not a JSON record ({error.msg})") from error
        return records

    def records(self) -> list[dict[str, Any]]:
        """Every record in this log, oldest first."""
        return self.read(self.path)

    def truncate_after(self, epoch: int) -> None:
        """Drop what a resumed run will redo: records of epochs after ``epoch`` and ``test`` records.

        Records without an ``epoch`` (other than ``test``) are kept. After this the
        log of a run resumed from epoch ``epoch``'s checkpoint matches that of an
        uninterrupted run. The file is rewritten atomically.
        """
        kept = [
            record
            for record in self.records()
            if record.get("event") != "test" and ("epoch" not in record or record["epoch"] <= epoch)
        ]
        write_atomic(self.path, "".join(json.dumps(record) + "\n" for record in kept))
