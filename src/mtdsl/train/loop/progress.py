"""Progress through one epoch: steps, per-task running losses and the realised sampling ratios.

On a terminal it is rich's live bar. Off one (a log file, a pipe) it is plain lines
instead, each whole: the step, the time so far, the losses and the ratios, ten times
an epoch (every step under ``--verbose``) and once at its end.

>>> import io
>>> from mtdsl.console import make_console
>>> console = make_console(file=io.StringIO())
>>> with EpochProgress("epoch 1/2 · all", 2, ["a"], console=console, clock=lambda: 0.0) as bar:
...     bar.advance(0, {"a": 1.0})
...     bar.advance(0, {"a": 0.5})
>>> print(console.file.getvalue(), end="")
epoch 1/2 · all: step 1/2 · 0:00:00 · loss a 1.000 │ ratios 1.00
epoch 1/2 · all: step 2/2 · 0:00:00 · loss a 0.950 │ ratios 1.00
"""

from __future__ import annotations

import datetime
import math
import time
from collections import Counter
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mtdsl import console as consoles

#: Plain lines an epoch off a terminal (besides its last step's), unless ``--verbose`` asks for every step.
LINES_PER_EPOCH = 10


class EpochProgress:
    """Args:
    title: e.g. ``"epoch 2/5 · all"``.
    steps: steps in the epoch.
    stream_labels: a label per stream (``shape+colour``).
    enabled: draw nothing when false (tests, ``--quiet``).
    """

    def __init__(self, title: str, steps: int, stream_labels: list[str], enabled: bool = True,
                 console: Console | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.labels = stream_labels
        self.counts: Counter[int] = Counter()
        self.running: dict[str, float] = {}
        self.title, self.steps, self.enabled, self.clock = title, steps, enabled, clock
        self.console = console or consoles.make_console()
        self.plain = consoles.plain(self.console)
        verbose = consoles.VERBOSITY >= consoles.VERBOSE
        self.every = 1 if verbose else max(1, math.ceil(steps / LINES_PER_EPOCH))
        self.started = clock()
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
            console=self.console, disable=not enabled or self.plain, transient=False,
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
        if self.plain and self.enabled and (total % self.every == 0 or total == self.steps):
            elapsed = datetime.timedelta(seconds=int(self.clock() - self.started))
            self.console.print(f"{self.title}: step {total}/{self.steps} · {elapsed} · loss {status} │ ratios {ratios}",
                               markup=False, highlight=False, soft_wrap=True)
