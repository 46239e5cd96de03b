"""Training curves of one run, drawn from the records of its ``metrics.jsonl``.

``plot_run(records, out_dir)`` writes three PNGs:

* ``losses.png``: each task's epoch-mean training loss (log-y when it spans more than a decade);
* ``metrics.png``: each task's main validation metric, their mean as a thick black line and a
  star on the best epoch by that mean;
* ``sampling.png``: the realised sampling ratio of each stream, stacked, one block per epoch.
* ``gradients.png``: each stream's mean (solid) and largest (dashed) gradient norm at the backbone
  per epoch, before clipping: a stream far above the others steers the shared layers (log-y when
  the values span more than a decade).

All four share the x axis (whole epochs) and mark each phase change with a dotted line
labelled with the phase that begins. A task has the same colour in every plot (sorted names
over a fixed palette). A plot with no records yet shows a note instead of being skipped, so a
stale file from an earlier call never survives. Figures are built on
:class:`matplotlib.figure.Figure`, never pyplot: no global state, no display needed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

try:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
except ImportError:  # optional: plot_run warns and draws nothing
    Figure = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: matplotlib's tab10.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")

Series = dict[str, tuple[list[int], list[float]]]


def colours(names: Iterable[str]) -> dict[str, str]:
    """A palette colour per name, assigned in sorted order so it does not depend on record order."""
    return {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(sorted(set(names)))}


def _by_epoch(records: Sequence[dict], event: str) -> list[dict]:
    """The records of one event, one per epoch (the last one wins), in epoch order."""
    latest = {record["epoch"]: record for record in records if record.get("event") == event and "epoch" in record}
    return [latest[epoch] for epoch in sorted(latest)]


def _series(records: Sequence[dict], field: str) -> Series:
    """``{name: (epochs, values)}`` from each record's ``record[field][name]``; ``None`` reads as nan."""
    series: Series = {}
    for record in records:
        for name, value in (record.get(field) or {}).items():
            epochs, values = series.setdefault(name, ([], []))
            epochs.append(record["epoch"])
            values.append(math.nan if value is None else float(value))
    return series


def _phase_starts(train: Sequence[dict]) -> list[tuple[int, str]]:
    """``(first epoch, phase)`` of each run of consecutive epochs in the same phase."""
    starts: list[tuple[int, str]] = []
    for record in train:
        phase = str(record.get("phase", ""))
        if not starts or starts[-1][1] != phase:
            starts.append((record["epoch"], phase))
    return starts


def _new_plot(
    title: str, ylabel: str, epochs: Sequence[int], phases: Sequence[tuple[int, str]]
) -> tuple[Figure, Axes]:
    """A figure whose x axis spans ``epochs`` (half an epoch either side) with the phase changes drawn."""
    figure = Figure(figsize=(7, 4))
    # Fixed margins: a layout engine doubles the cost of a save.
    figure.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.92)
    ax = figure.subplots()
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if epochs:
        ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
    if len(phases) > 1:
        for index, (epoch, phase) in enumerate(phases):
            if index:
                ax.axvline(epoch - 0.5, color="0.4", linestyle=":", linewidth=1)
            # x in data units, y in axes units: the label sits at the top whatever the y range.
            ax.text(epoch - 0.45, 0.98, phase, transform=ax.get_xaxis_transform(), rotation=90, va="top", fontsize=8)
    return figure, ax


def _save(figure: Figure, ax: Axes, path: Path, empty_note: str | None) -> Path:
    """Write the figure; ``empty_note`` is shown in place of a legend when nothing was drawn."""
    if empty_note:
        ax.text(0.5, 0.5, empty_note, transform=ax.transAxes, ha="center", va="center", color="0.5")
    elif ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    figure.savefig(path, dpi=100)
    return path


def _draw_losses(ax: Axes, train: Sequence[dict], palette: dict[str, str]) -> bool:
    series = _series(train, "losses")
    for task, (epochs, values) in sorted(series.items()):
        ax.plot(epochs, values, marker=".", color=palette[task], label=task)
    finite = [value for _, values in series.values() for value in values if math.isfinite(value)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 10:
        ax.set_yscale("log")
    return bool(series)


def _draw_metrics(ax: Axes, val: Sequence[dict], palette: dict[str, str]) -> bool:
    for task, (epochs, values) in sorted(_series(val, "main").items()):
        ax.plot(epochs, values, marker=".", color=palette[task], label=task)
    scored = [(record["epoch"], float(record["mean"])) for record in val if record.get("mean") is not None]
    if scored:
        ax.plot(*zip(*scored), color="black", linewidth=2.5, label="mean")
        finite = [(mean, epoch) for epoch, mean in scored if math.isfinite(mean)]
        if finite:
            best, epoch = max(finite)
            label = f"best: epoch {epoch}, {best:.4f}"
            ax.plot([epoch], [best], "*", markersize=14, color="gold", markeredgecolor="black", label=label)
    return bool(val)


def _draw_sampling(ax: Axes, train: Sequence[dict]) -> bool:
    streams = sorted({name for record in train for name in record.get("ratios") or {}})
    if not streams:
        return False
    # A ratio holds for a whole epoch: a block from epoch - 0.5 to epoch + 0.5 (visible with one epoch too).
    edges = [record["epoch"] - 0.5 for record in train] + [train[-1]["epoch"] + 0.5]
    shares = [[float((record.get("ratios") or {}).get(name) or 0.0) for record in train] for name in streams]
    palette = colours(streams)
    stacked = [row + row[-1:] for row in shares]
    ax.stackplot(edges, *stacked, step="post", labels=streams, colors=[palette[name] for name in streams])
    ax.set_ylim(0, max(1.0, *map(sum, zip(*shares))))
    return True


def _draw_gradients(ax: Axes, train: Sequence[dict]) -> bool:
    series: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for record in train:
        for stream, norms in (record.get("backbone_gradient_norm") or {}).items():
            for statistic in ("mean", "max"):
                epochs, values = series.setdefault(stream, {}).setdefault(statistic, ([], []))
                epochs.append(record["epoch"])
                values.append(float(norms[statistic]))
    palette = colours(series)
    for stream, statistics in sorted(series.items()):
        ax.plot(*statistics["mean"], marker=".", color=palette[stream], label=f"{stream} (mean)")
        ax.plot(*statistics["max"], linestyle="--", color=palette[stream], label=f"{stream} (largest)")
    positive = [value for statistics in series.values() for _, values in statistics.values() for value in values
                if math.isfinite(value) and value > 0]
    if positive and max(positive) / min(positive) > 10:
        ax.set_yscale("log")
    return bool(series)


def plot_run(records: Iterable[dict], out_dir: Path) -> list[Path]:
    """Draw a run's losses, validation metrics, sampling ratios and backbone gradient norms.

    Args:
        records: parsed lines of the run's ``metrics.jsonl``: ``train`` records (``epoch``,
            ``phase``, ``losses``, ``ratios``) and ``val`` records (``epoch``, ``main``, ``mean``);
            other events are ignored and any of them may be missing.
        out_dir: the folder to write into; created when absent.

    Returns:
        The paths of ``losses.png``, ``metrics.png``, ``sampling.png`` and ``gradients.png``, in that order; none
        (and a warning) when matplotlib is not installed, so a training run never stops for a plot.
    """
    if Figure is None:
        message = "matplotlib is not installed, so no plots were drawn (install: pip install matplotlib)"
        warnings.warn(message, stacklevel=2)
        return []
    records = list(records)
    train, val = _by_epoch(records, "train"), _by_epoch(records, "val")
    epochs = sorted({record["epoch"] for record in [*train, *val]})
    phases = _phase_starts(train)
    palette = colours([*_series(train, "losses"), *_series(val, "main")])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    drawings = [
        ("losses.png", "training loss", "epoch-mean loss", lambda ax: _draw_losses(ax, train, palette), "training"),
        ("metrics.png", "validation", "main metric", lambda ax: _draw_metrics(ax, val, palette), "validation"),
        ("sampling.png", "sampling ratios", "share of batches", lambda ax: _draw_sampling(ax, train), "training"),
        ("gradients.png", "gradient norm at the backbone, per stream", "norm before clipping",
         lambda ax: _draw_gradients(ax, train), "backbone gradient"),
    ]
    paths = []
    for name, title, ylabel, draw, event in drawings:
        figure, ax = _new_plot(title, ylabel, epochs, phases)
        paths.append(_save(figure, ax, out_dir / name, None if draw(ax) else f"no {event} records yet"))
    return paths
