"""Stopping a run from outside: SIGTERM like Ctrl-C, and launches this loop cannot serve.

SLURM and Kubernetes stop a job with SIGTERM (then SIGKILL after a grace
period). Python's default for SIGTERM is to die at once, silently; during
training :func:`stop_signals` turns it into :class:`RunStopped`, a
``KeyboardInterrupt``, so it takes the path Ctrl-C takes: the step in flight is
abandoned (nothing of it was saved), the last checkpoint stays as it was, and
the caller prints how to resume. Loader workers ignore the signal, since
schedulers send it to every process of the job: the main process shuts them
down itself.

>>> import os, signal
>>> with stop_signals():
...     try:
...         os.kill(os.getpid(), signal.SIGTERM)
...     except RunStopped as stopped:
...         stopped.exit_code
143
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mtdsl.errors import TrainingError

if TYPE_CHECKING:
    from mtdsl.train.run.folder import RunFolder

#: The signals that stop a run cleanly besides SIGINT (Ctrl-C, already a KeyboardInterrupt).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class RunStopped(KeyboardInterrupt):
    """The run was asked to stop by a signal; ``exit_code`` is the shell's ``128 + signal number``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise_stopped(signum: int, frame: object) -> None:
    raise RunStopped(signum)


@contextlib.contextmanager
def stop_signals(*, deferred: bool = False) -> Iterator[None]:
    """Within the block, SIGTERM (and SIGHUP) raise :class:`RunStopped` in the main thread.

    ``deferred`` (the training loop): SIGTERM, SIGHUP and SIGINT only record the request. The loop
    reads it with :func:`stop_requested` during each step (sharing it with the other ranks, so all
    stop at the same step and none waits in a collective for one that has gone), finishes that
    step, saves where it is and stops. A second signal stops at once, as before.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; a run driven from another thread keeps the defaults
        return
    numbers = (*STOP_SIGNALS, signal.SIGINT) if deferred else STOP_SIGNALS
    previous = {number: signal.signal(number, _record_stop if deferred else _raise_stopped) for number in numbers}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _REQUESTED.clear()


_REQUESTED: list[int] = []


def _record_stop(signum: int, frame: object) -> None:
    if _REQUESTED:  # asked twice: stop now, without waiting for the step to end
        raise RunStopped(signum)
    _REQUESTED.append(signum)
    if os.environ.get("RANK", "0").strip() in ("", "0"):  # one line per run, not per process
        print(f"\n{signal.Signals(signum).name}: stopping once this step is done and saved "
              "(send it again to stop at once)", file=sys.stderr, flush=True)


def stop_requested() -> int | None:
    """The signal that asked a deferred run (:func:`stop_signals`) to stop, or ``None``."""
    return _REQUESTED[0] if _REQUESTED else None


def ignore_stop_signals(worker_id: int = 0) -> None:
    """A loader worker's ``worker_init_fn``: leave stopping to the main process."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)


def refuse_multi_process_launch(command: str) -> None:
    """Raise when ``command`` (one that runs in one process, such as ``mtdsl compare``) was
    started as one of several processes (``torchrun --nproc_per_node N``, N > 1).

    Raises:
        TrainingError: ``WORLD_SIZE`` is above 1, or ``RANK``/``LOCAL_RANK`` name a process other than the first.
    """
    world_size = os.environ.get("WORLD_SIZE", "1")
    ranks = {name: os.environ.get(name, "0") for name in ("RANK", "LOCAL_RANK")}
    several = world_size.strip() not in ("", "1") or any(rank.strip() not in ("", "0") for rank in ranks.values())
    if several:
        raise TrainingError(
            f"{command} was launched as one of several processes (WORLD_SIZE={world_size}, "
            f"RANK={ranks['RANK']}, LOCAL_RANK={ranks['LOCAL_RANK']}), but it runs in one: "
            "each would time and train every model into the same folder",
            hint=f"run `{command}` without torchrun; `mtdsl train SPEC --nproc N` trains one model with N processes",
        )


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The exit status of a stopped run: ``128 + signal``, as a shell reports a process the signal ended."""
    return interrupt.exit_code if isinstance(interrupt, RunStopped) else 128 + signal.SIGINT


def stopped_message(interrupt: KeyboardInterrupt, run: RunFolder, command: str) -> str:
    """What was kept of a stopped run and the command that continues it; ``command`` is the one that started it."""
    cause = f"stopped by {interrupt.name}" if isinstance(interrupt, RunStopped) else "interrupted"
    if run.last.exists():
        return f"{cause}: the run's last saved state is in {run.last}; continue with: {command} --resume"
    return f"{cause}: no step had finished, so there is nothing to resume; start again with: {command} --overwrite"
