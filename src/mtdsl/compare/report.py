"""The comparison as terminal tables, ``compare.json``, ``compare.md`` and a bar chart ``compare.png``.

Cost table rows: the multi-task model, each task's single-task model, their
total, and ``single / multi``, the factor sharing saves (above 1 means the
multi-task model is smaller or faster). After ``--train``, a second table has
one row per task: its main test metric in the multi-task model and in its
single-task model, the difference, and the images each saw (the budget).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from rich.table import Table

from mtdsl.compare import MULTI
from mtdsl.compare.training import training_time
from mtdsl.render.dot import human

TOTAL = "single-task total"


def _ratio(single: float, multi: float) -> str:
    return f"{single / multi:.2f}×" if multi > 0 and single >= 0 else "n/a"


def _megabytes(value: int) -> str:
    return "n/a" if value < 0 else f"{value / 2**20:.1f} MiB"


def _columns(result: dict) -> list[str]:
    batches = [f"latency b{batch} (ms)" for batch in result["batch_sizes"]]
    return ["model", "params", "FLOPs", "MACs", *batches, f"peak memory b{max(result['batch_sizes'])}"]


def _cells(result: dict, name: str) -> list[str]:
    row = result["rows"][name]
    label = name if name in (MULTI, TOTAL) else f"single: {name}"
    latency = [f"{row['latency_ms'][batch]:.2f}" for batch in result["batch_sizes"]]
    return [label, human(row["params"]), human(row["flops"]), human(row["macs"]), *latency,
            _megabytes(row["peak_memory_bytes"])]


def _ratio_cells(result: dict) -> list[str]:
    multi, total = result["rows"][MULTI], result["rows"][TOTAL]
    latency = [_ratio(total["latency_ms"][batch], multi["latency_ms"][batch]) for batch in result["batch_sizes"]]
    return ["single / multi", _ratio(total["params"], multi["params"]), _ratio(total["flops"], multi["flops"]),
            _ratio(total["macs"], multi["macs"]), *latency,
            _ratio(total["peak_memory_bytes"], multi["peak_memory_bytes"])]


def _order(result: dict) -> list[str]:
    return [MULTI, *result["tasks"], TOTAL]


def _caption(result: dict) -> str:
    return (f"{result['model']}: one multi-task model vs {len(result['tasks'])} single-task models, "
            f"input {'x'.join(map(str, result['input']))}, {result['device']}, median of {result['runs']} runs "
            "(FLOPs count 2 per multiply-add; MACs = FLOPs / 2)")


def compare_table(result: dict) -> Table:
    table = Table(title=_caption(result))
    for index, column in enumerate(_columns(result)):
        table.add_column(column, justify="left" if index == 0 else "right", no_wrap=index == 0)
    for name in _order(result):
        if name == TOTAL:
            table.add_section()
        table.add_row(*_cells(result, name))
    table.add_row(*_ratio_cells(result))
    return table


METRIC_COLUMNS = ["task", "metric", "split", "multi", "single", "Δ", "images multi / single"]


def _metric_rows(result: dict) -> list[list[str]]:
    runs = result["training"]["runs"]
    rows = []
    for task in result["tasks"]:
        multi, single = runs[MULTI]["metrics"][task], runs[task]["metrics"][task]
        rows.append([task, multi["metric"], multi["split"] or "n/a", f"{multi['value']:.4f}",
                     f"{single['value']:.4f}", f"{multi['value'] - single['value']:+.4f}",
                     f"{runs[MULTI]['images'][task]:,} / {runs[task]['images'][task]:,}"])
    time = result["training"].get("time") or training_time(runs, result["tasks"])
    rows.append(["training", "seconds (steps)", "", f"{time['multi_seconds']:.0f}", f"{time['single_seconds']:.0f}",
                 f"{time['ratio']:.2f}×", ""])
    multi_wall, single_wall = time["multi_wall_seconds"], time["single_wall_seconds"]
    rows.append(["", "wall seconds (+ evaluation)", "", f"{multi_wall:.0f}", f"{single_wall:.0f}",
                 f"{multi_wall - single_wall:+.0f}", ""])
    rows.append(["", "task-images / s", "", f"{time['multi_images_per_second']:.1f}",
                 f"{time['single_images_per_second']:.1f}", "", ""])
    return rows


def _metric_caption(result: dict) -> str:
    training = result["training"]
    held = ("each single-task model saw as many images as its task did in the multi-task run"
            if training["budget"] == "images" else
            "the single-task models together trained as long as the multi-task model")
    return (f"{result['model']}: each task's main test metric, multi-task model against single-task model, seed "
            f"{training['seed']} ({held}; val where there is no test split; Δ = multi − single)")


def metric_table(result: dict) -> Table:
    table = Table(title=_metric_caption(result))
    for index, column in enumerate(METRIC_COLUMNS):
        table.add_column(column, justify="left" if index < 3 else "right", no_wrap=index == 0)
    rows = _metric_rows(result)
    tasks = len(result["tasks"])
    for row in rows[:tasks]:
        table.add_row(*row)
    table.add_section()
    for row in rows[tasks:]:
        table.add_row(*row)
    return table


def _markdown_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(r) + " |" for r in rows)]


def compare_markdown(result: dict) -> str:
    rows = [*(_cells(result, name) for name in _order(result)), _ratio_cells(result)]
    lines = [f"# {_caption(result)}", "", *_markdown_table(_columns(result), rows)]
    if "training" in result:
        lines += ["", f"## {_metric_caption(result)}", "", *_markdown_table(METRIC_COLUMNS, _metric_rows(result))]
    return "\n".join(lines) + "\n"


def write_compare(result: dict, out: Path) -> list[Path]:
    """``compare.json``, ``compare.md`` and ``compare.png`` (when matplotlib is installed) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "compare.json", out / "compare.md"]
    written[0].write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    written[1].write_text(compare_markdown(result), encoding="utf-8")
    chart = _chart(result, out / "compare.png")
    return written + ([chart] if chart else [])


def _latency_at(batch: int) -> Callable[[dict], float]:
    """A row's latency at ``batch``, in ms."""
    return lambda row: row["latency_ms"][batch]


def _chart(result: dict, path: Path) -> Path | None:
    """Bars of the multi-task model against the single-task models stacked per task, one panel per measure."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    from mtdsl.render.plots import colours

    measures: list[tuple[str, Callable[[dict], float]]] = [("parameters (M)", lambda row: row["params"] / 1e6)]
    measures += [(f"latency, batch {batch} (ms)", _latency_at(batch)) for batch in result["batch_sizes"]]
    palette = colours(result["tasks"])
    panels = len(measures) + ("training" in result)
    figure = Figure(figsize=(3.2 * panels + 0.8 * len(result["tasks"]) * ("training" in result), 3.6),
                    layout="constrained")
    every_axes = figure.subplots(1, panels, squeeze=False)[0]
    if "training" in result:
        _metric_panel(every_axes[-1], result, palette)
    for axes, (title, value) in zip(every_axes, measures):
        axes.bar(0, value(result["rows"][MULTI]), color="#555555", label=MULTI)
        bottom = 0.0
        for task in result["tasks"]:
            height = value(result["rows"][task])
            axes.bar(1, height, bottom=bottom, color=palette[task], label=f"single: {task}")
            bottom += height
        axes.set_xticks([0, 1], ["multi-task", f"{len(result['tasks'])} single-task"])
        axes.set_title(title, fontsize=10)
    figure.legends.clear()
    handles, labels = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize=8)
    figure.suptitle(f"{result['model']}: sharing against single-task models ({result['device']})", fontsize=11)
    figure.savefig(path, dpi=100)
    return path


def _metric_panel(axes, result: dict, palette: dict) -> None:
    """Each task's test metric: the multi-task model's bar beside its single-task model's."""
    runs = result["training"]["runs"]
    for index, task in enumerate(result["tasks"]):
        axes.bar(index - 0.2, runs[MULTI]["metrics"][task]["value"], width=0.4, color="#555555")
        axes.bar(index + 0.2, runs[task]["metrics"][task]["value"], width=0.4, color=palette[task])
    axes.set_xticks(range(len(result["tasks"])), result["tasks"], rotation=30, ha="right", fontsize=8)
    axes.set_ylim(0, 1)
    axes.set_title("test metric (multi grey, single colour)", fontsize=10)
