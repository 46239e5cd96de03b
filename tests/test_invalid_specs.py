"""Every spec in tests/invalid/ holds one mistake and fails with the error its header states.

Each file starts with::

    # error: <stage>: <a substring of the message>
    # at: <line>:<column>
    # hint: <a substring of the hint>        (optional)

The spec is loaded and its graph built, as ``mtdsl compile`` does; the error
must be an :class:`~mtdsl.errors.MtdslError` of that stage, at that position,
and its rendering must show ``file:line:col``, the caret and the hint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from mtdsl.cli import main
from mtdsl.errors import MtdslError
from mtdsl.graph.build import build_graph
from mtdsl.spec.load import load_spec

CORPUS = Path(__file__).parent / "invalid"
SPECS = sorted(CORPUS.glob("*.mtl"))

_STAGES = ("syntax error", "name error", "invalid value", "backbone error", "graph error", "weights error", "i/o error")


@dataclass(frozen=True)
class Expectation:
    stage: str
    message: str
    line: int
    column: int
    hint: str | None


def expectation(path: Path) -> Expectation:
    """The expected error stated in the header comments of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    error = re.fullmatch(r"# error: (.+)", lines[0])
    at = re.fullmatch(r"# at: (\d+):(\d+)", lines[1])
    assert error and at, f"{path.name}: the first lines must be '# error: STAGE: TEXT' and '# at: LINE:COL'"
    stage = next((s for s in _STAGES if error.group(1).startswith(s + ": ")), None)
    assert stage, f"{path.name}: unknown stage in {lines[0]!r}"
    hint = re.fullmatch(r"# hint: (.+)", lines[2]) if len(lines) > 2 else None
    return Expectation(
        stage=stage,
        message=error.group(1)[len(stage) + 2 :],
        line=int(at.group(1)),
        column=int(at.group(2)),
        hint=hint.group(1) if hint else None,
    )


def compile_error(path: Path) -> MtdslError:
    with pytest.raises(MtdslError) as caught:
        build_graph(load_spec(path))
    return caught.value


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_invalid_spec_fails_as_stated(path: Path) -> None:
    expected = expectation(path)
    error = compile_error(path)

    assert error.stage == expected.stage, error.render()
    assert expected.message in error.message, error.render()
    assert error.span is not None, error.render()
    assert (error.span.line, error.span.column) == (expected.line, expected.column), error.render()
    if expected.hint is not None:
        assert error.hint is not None and expected.hint in error.hint, error.render()

    rendered = error.render()
    assert f"{path}:{expected.line}:{expected.column}" in rendered
    caret_line = rendered.splitlines()[2]
    assert caret_line.strip() and set(caret_line.strip()) == {"^"}, rendered
    assert caret_line.index("^") == rendered.splitlines()[1].index("|") + 2 + expected.column - 1, rendered
    if error.hint:
        assert f"hint: {error.hint}" in rendered


def test_corpus_is_large_enough() -> None:
    assert len(SPECS) >= 30


@pytest.mark.parametrize("name", ["syntax_unclosed_block.mtl", "branch_cycle_two.mtl"])
def test_cli_reports_without_traceback(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / name
    expected = expectation(path)

    status = main(["compile", str(path), "--out", str(tmp_path)])

    stderr = capsys.readouterr().err
    assert status == 2
    assert "Traceback" not in stderr
    assert f"{path}:{expected.line}:{expected.column}" in stderr
    assert expected.message in stderr
