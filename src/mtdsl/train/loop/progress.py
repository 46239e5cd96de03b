"""A live progress bar for one epoch: steps, per-task running losses and the realised sampling ratios."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class EpochProgress:
    """Args:
    title: e.g. ``"epoch 2/5 · all"``.
    steps: steps in the epoch.
    stream_labels: a label per stream (``shape+colour``).
    enabled: draw nothing when false (tests, ``--quiet``).
    """

    def __init__(self, title: str, steps: int, stream_labels: list[str], enabled: bool = True,
                 console: Console | None = None) -> None:
        self.labels = stream_labels
        self.counts: Counter[int] = Counter()
        self.running: dict[str, float] = {}
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
            console=console, disable=not enabled, transient=False,
        )
        self._bar = self._progress.add_task(title, total=steps, status="")

    def __enter__(self) -> EpochProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def advance(self, stream: int, losses: dict[str, float]) -> None:
        self.counts[stream] += 1
        for task, value in losses.items():
            previous = self.running.get(task)
            self.running[task] = value if previous is None else 0.9 * previous + 0.1 * value
        total = sum(self.counts.values())
        status = " ".join(f"{task} {value:.3f}" for task, value in self.running.items())
        ratios = " ".join(f"{self.counts[i] / total:.2f}" for i in range(len(self.labels)))
        self._progress.update(self._bar, advance=1, status=f"loss {status} │ ratios {ratios}")
