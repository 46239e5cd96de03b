"""Every error a user can cause, in one hierarchy.

Each error knows where it happened (``file:line:col``), shows the source line
with a caret under the bad text, says what was expected and suggests a fix.
The CLI prints :meth:`MtdslError.render` and exits with status 2; a traceback
is only ever shown for mtdsl's own bugs.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A region of a source file; lines and columns count from 1, ``end_column`` is exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int

    def shifted(self, columns: int, width: int) -> Span:
        """A sub-span of a single-line span, ``columns`` to the right and ``width`` wide."""
        start = self.column + columns
        return Span(self.line, start, self.line, start + max(width, 1))


@dataclass(frozen=True)
class Source:
    """A spec's text and the name it is reported under."""

    path: str
    text: str

    def line(self, number: int) -> str:
        """Line ``number`` (from 1) as lark counts lines: only ``\\n`` ends one.

        ``str.splitlines`` also splits at form feeds, ``\\x85``, ``\\u2028`` and
        other separators, which would show a different line than the one lark
        reported.
        """
        lines = self.text.split("\n")
        return lines[number - 1] if 0 < number <= len(lines) else ""


def close_matches(word: str, options: Iterable[str], n: int = 3) -> list[str]:
    """Options that look like ``word``, best first (for 'did you mean' hints)."""
    return difflib.get_close_matches(word, list(options), n=n, cutoff=0.6)


def did_you_mean(word: str, options: Iterable[str]) -> str | None:
    matches = close_matches(word, options)
    if not matches:
        return None
    return "did you mean " + " or ".join(f"'{m}'" for m in matches) + "?"


def listing(options: Iterable[str], limit: int | None = 12) -> str:
    """The options sorted and joined; past ``limit`` of them (``None``: no limit), how many more.

    >>> listing(["b", "a", "c"], limit=2), listing(["b", "a", "c"], limit=None)
    ('a, b, … (1 more)', 'a, b, c')
    """
    items = sorted(set(options))
    if limit is None or len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f", … ({len(items) - limit} more)"


class MtdslError(Exception):
    """Base of every user-facing error.

    Args:
        message: what is wrong, naming the bad value.
        span: where in the source it is; ``None`` when there is no source position.
        source: the spec the span points into.
        expected: what would have been valid.
        hint: a concrete fix.
    """

    stage = "error"
    #: The CLI's exit status for this error: 2, a user's mistake (:class:`RunFailed`: 1).
    exit_status = 2

    def __init__(
        self,
        message: str,
        span: Span | None = None,
        *,
        source: Source | None = None,
        expected: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.source = source
        self.expected = expected
        self.hint = hint

    def with_source(self, source: Source) -> MtdslError:
        if self.source is None:
            self.source = source
        return self

    @property
    def location(self) -> str:
        """``file:line:col``, the file alone, or ``""`` for errors that are not about spec text."""
        if self.source is None and self.span is None:
            return ""
        path = self.source.path if self.source else "<spec>"
        if self.span is None:
            return path
        return f"{path}:{self.span.line}:{self.span.column}"

    def render(self) -> str:
        """The full message: location, source line, caret, expectation and hint."""
        prefix = f"{self.location}: " if self.location else ""
        lines = [f"{prefix}{self.stage}: {self.message}"]
        if self.span is not None and self.source is not None:
            text = self.source.line(self.span.line)
            if text:
                gutter = f"{self.span.line:>4} | "
                width = (
                    self.span.end_column - self.span.column
                    if self.span.end_line == self.span.line
                    else len(text) - self.span.column + 1
                )
                lines.append(gutter + text)
                lines.append(" " * (len(gutter) + self.span.column - 1) + "^" * max(width, 1))
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, str | int | None]:
        """The error as plain data for editors and CI (``mtdsl check --json``): every field :meth:`render` shows.

        ``line``/``col``/``end_line``/``end_col`` count from 1 (``end_col`` exclusive) and are
        ``None`` for an error with no position, as ``file`` is for one about no spec file.

        >>> error = SpecValueError("epochs = 0 must be positive", Span(3, 14, 3, 15),
        ...                        source=Source("a.mtl", ""), hint="write epochs = 1")
        >>> error.to_dict()["line"], error.to_dict()["stage"], error.to_dict()["expected"]
        (3, 'invalid value', None)
        """
        span = self.span
        return {
            "file": self.source.path if self.source else None,
            "line": span.line if span else None,
            "col": span.column if span else None,
            "end_line": span.end_line if span else None,
            "end_col": span.end_column if span else None,
            "stage": self.stage,
            "message": self.message,
            "expected": self.expected,
            "hint": self.hint,
        }

    def __str__(self) -> str:
        return self.render()


class SpecSyntaxError(MtdslError):
    """The text is not a well-formed spec."""

    stage = "syntax error"


class SpecNameError(MtdslError):
    """A name is unknown, duplicated or refers to something of the wrong sort."""

    stage = "name error"


class SpecValueError(MtdslError):
    """A value has the wrong type or is out of range."""

    stage = "invalid value"


class BackboneError(MtdslError):
    """A backbone cannot be built or tapped as asked."""

    stage = "backbone error"


class GraphError(MtdslError):
    """The sharing graph cannot be formed (cycles, unreachable heads)."""

    stage = "graph error"


class WeightsError(MtdslError):
    """Pretrained weights were asked for but cannot be found."""

    stage = "weights error"


class ArtefactError(MtdslError):
    """An output could not be written or an input file could not be read."""

    stage = "i/o error"


class DataError(MtdslError):
    """A dataset cannot be read as the spec declares it: missing files, corrupt images, unknown labels.

    ``dataset`` names the spec's dataset when the reader knows it, so ``mtdsl check --data`` can
    point at its declaration.
    """

    stage = "data error"
    dataset: str | None = None


class ExportError(MtdslError):
    """A model cannot be exported in the format asked for (exporter missing, or failing on the model)."""

    stage = "export error"


class TrainingError(MtdslError):
    """Training cannot go on: a non-finite loss, or a checkpoint that does not fit the spec."""

    stage = "training error"


class RunFailed(TrainingError):
    """A run that was set up right failed on its way: a loss became NaN or infinite (exit status 1)."""

    exit_status = 1


class DataWarning(UserWarning):
    """Data that trains, but likely not as meant: a class folder without images.

    Emitted with :func:`warnings.warn`; ``mtdsl train`` shows each one in yellow
    with the streams' split sizes before the first step.
    """


class FailedElsewhere(MtdslError):
    """Another process of a run of several (torchrun) failed and printed why; this one only stops quietly."""

    stage = "stopped"

