"""How a run of several processes says that one of them failed: one line, never a traceback.

Two views of one failure. A process killed by a signal (SIGKILL from the
kernel's out-of-memory killer, say) prints nothing, and the launcher of
``mtdsl train --nproc N`` names it (:func:`failure_line`). The processes left
find their next collective broken (gloo: "Connection reset by peer"), which
:func:`lost_peer` recognises, so they stop with one line too instead of a
traceback that would read as the cause.

>>> failure_line(1, -9, 2)
('process 1 of 2 was killed by SIGKILL (signal 9), so it printed no message of its own', 137)
>>> failure_line(0, 2, 2)
('process 0 of 2 stopped with exit status 2 (its message is above)', 2)
"""

from __future__ import annotations

import signal

__all__ = ["failure_line", "lost_peer"]

#: What gloo, NCCL and torch's stores say when the process at the other end of a collective is gone.
LOST_PEER_MARKERS = (
    "Connection reset by peer",
    "Connection closed by peer",
    "Connection refused",
    "Broken pipe",
    "remote process exited",
    "NCCL communicator was aborted",
)


def failure_line(rank: int, exitcode: int, processes: int) -> tuple[str, int]:
    """The launcher's line for process ``rank``'s failure, and the exit status to end with.

    A negative ``exitcode`` is torch's way of saying the process was killed by that signal
    (exit status ``128 + signal``, as a shell reports it).
    """
    if exitcode < 0:
        number = -exitcode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return (f"process {rank} of {processes} was killed by {name} (signal {number}), "
                "so it printed no message of its own"), 128 + number
    return (f"process {rank} of {processes} stopped with exit status {exitcode} (its message is above)",
            exitcode if 0 < exitcode < 256 else 2)


def lost_peer(error: BaseException) -> str | None:
    """Why a collective failed (e.g. ``"Connection reset by peer"``) when another process of the run is gone, else
    ``None``."""
    from torch.distributed import DistNetworkError

    if not isinstance(error, RuntimeError):
        return None
    found = next((marker for marker in LOST_PEER_MARKERS if marker in str(error)), None)
    return found or (str(error).strip().splitlines()[0][:120] if isinstance(error, DistNetworkError) else None)
