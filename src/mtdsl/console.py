"""The console every command prints through: rich on a terminal, plain unwrapped lines off one.

On a terminal, output is rich's: colours, tables fitted to the window, live
progress bars. Redirected to a file or a pipe (``mtdsl train … > log.txt``,
``| cat``, a CI log), the same output must still read line by line: no escape
codes (rich writes none off a terminal), no line broken at 80 columns, no text
cut to fit a width no one is looking at. So off a terminal the console has no
width limit and never wraps; tables take the width their cells need, and
progress is printed as one plain line every few steps
(:class:`mtdsl.train.loop.progress.EpochProgress`).

``--quiet`` and ``--verbose`` on every command set :data:`VERBOSITY`: quiet drops
what a command says along the way (progress, per-epoch lines, the tables and "ok"
lines of ``compile`` and ``check``) and keeps what it reports at its end; verbose
adds a progress line for every step off a terminal. Errors are printed to stderr
whatever the verbosity.

>>> import io
>>> console = make_console(file=io.StringIO())
>>> console.print("x" * 200)
>>> max(len(line) for line in console.file.getvalue().splitlines())
200
"""

from __future__ import annotations

from typing import IO

from rich.console import Console

#: Off a terminal, no line is ever wrapped or cut: wider than any line mtdsl writes.
UNLIMITED_WIDTH = 1_000_000

QUIET, NORMAL, VERBOSE = -1, 0, 1

#: How much the commands say: :data:`QUIET`, :data:`NORMAL` or :data:`VERBOSE` (set by the CLI's flags).
VERBOSITY = NORMAL


def set_verbosity(level: int) -> None:
    """Set :data:`VERBOSITY` for the consoles made after this call."""
    global VERBOSITY
    VERBOSITY = level


def make_console(*, quiet: bool = False, stderr: bool = False, file: IO[str] | None = None) -> Console:
    """A console for ``stdout`` (or ``stderr``, or ``file``) that is quiet when asked or under ``--quiet``.

    Args:
        quiet: print nothing.
        stderr: write to standard error.
        file: write here instead (tests).

    Returns:
        rich's console on a terminal or in a notebook; off one, a console with no width limit
        that never wraps, and (as rich does off a terminal) writes no escape codes.
    """
    console = Console(quiet=quiet, stderr=stderr, file=file)
    if console.is_terminal or console.is_jupyter:
        return console
    return Console(quiet=quiet, stderr=stderr, file=file, width=UNLIMITED_WIDTH, soft_wrap=True)


def plain(console: Console) -> bool:
    """Whether ``console`` writes to a file or a pipe: no live display, one line at a time."""
    return not (console.is_terminal or console.is_jupyter)
