"""The comparison as a terminal table, ``compare.json``, ``compare.md`` and a bar chart ``compare.png``.

Rows: the multi-task model, each task's single-task model, their total, and
``single / multi``, the factor sharing saves (above 1 means the multi-task
model is smaller or faster).
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from mtdsl.compare import MULTI
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


def compare_markdown(result: dict) -> str:
    lines = [f"# {_caption(result)}", "", "| " + " | ".join(_columns(result)) + " |",
             "|" + "---|" * len(_columns(result))]
    for cells in [*(_cells(result, name) for name in _order(result)), _ratio_cells(result)]:
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_compare(result: dict, out: Path) -> list[Path]:
    """``compare.json``, ``compare.md`` and ``compare.png`` (when matplotlib is installed) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "compare.json", out / "compare.md"]
    written[0].write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    written[1].write_text(compare_markdown(result), encoding="utf-8")
    chart = _chart(result, out / "compare.png")
    return written + ([chart] if chart else [])


def _chart(result: dict, path: Path) -> Path | None:
    """Bars of the multi-task model against the single-task models stacked per task, one panel per measure."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    from mtdsl.render.plots import colours

    measures = [("parameters (M)", lambda row: row["params"] / 1e6)]
    measures += [(f"latency, batch {batch} (ms)", lambda row, b=batch: row["latency_ms"][b])
                 for batch in result["batch_sizes"]]
    palette = colours(result["tasks"])
    figure = Figure(figsize=(3.2 * len(measures), 3.6), layout="constrained")
    for axes, (title, value) in zip(figure.subplots(1, len(measures), squeeze=False)[0], measures):
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
