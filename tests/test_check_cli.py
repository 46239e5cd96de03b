"""``mtdsl check SPEC... [--json]``: every spec parsed, validated and resolved, its graph built; exit 0 or 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SPECS
from test_invalid_specs import SPECS as INVALID
from test_invalid_specs import expectation

import mtdsl
from mtdsl.cli import main

FIELDS = ["file", "line", "col", "end_line", "end_col", "stage", "message", "expected", "hint"]


def check_json(capsys, *arguments: str) -> tuple[int, list[dict]]:
    code = main(["check", "--json", *arguments])
    return code, json.loads(capsys.readouterr().out)


def test_the_shipped_specs_are_fine(capsys):
    assert main(["check", *map(str, SPECS)]) == 0
    out = capsys.readouterr().out
    assert all(f"ok {spec}" in out for spec in SPECS)
    assert check_json(capsys, *map(str, SPECS)) == (0, [])


@pytest.mark.parametrize("path", INVALID, ids=[p.name for p in INVALID])
def test_each_invalid_spec_exits_2_with_its_located_error_as_json(path, capsys):
    expected = expectation(path)
    code, errors = check_json(capsys, str(path))
    assert code == 2 and len(errors) == 1
    error = errors[0]
    assert list(error) == FIELDS
    assert error["file"] == str(path)
    assert (error["line"], error["col"]) == (expected.line, expected.column), error
    assert error["stage"] == expected.stage and expected.message in error["message"]
    assert error["end_line"] >= error["line"]
    if expected.hint is not None:
        assert expected.hint in error["hint"]


def test_without_json_the_errors_are_rendered_on_stderr(capsys):
    bad = INVALID[0]
    assert main(["check", str(SPECS[0]), str(bad)]) == 2
    captured = capsys.readouterr()
    expected = expectation(bad)
    assert f"{bad}:{expected.line}:{expected.column}: {expected.stage}: " in captured.err
    assert "^" in captured.err and "Traceback" not in captured.err
    assert f"ok {SPECS[0]}" in captured.out and str(bad) not in captured.out


def test_only_the_bad_specs_are_listed_and_a_missing_file_is_one(tmp_path, capsys):
    missing = tmp_path / "nope.mtl"
    code, errors = check_json(capsys, str(SPECS[0]), str(missing), str(INVALID[0]))
    assert code == 2
    assert [error["file"] for error in errors] == [str(missing), str(INVALID[0])]
    assert errors[0]["stage"] == "i/o error" and errors[0]["line"] is None and "not found" in errors[0]["message"]


def test_set_overrides_a_variable(capsys):
    plants = next(spec for spec in SPECS if spec.stem == "plants")
    assert main(["check", str(plants), "--set", "nosuch=1"]) == 2
    assert "--set nosuch" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["quickstart", "plants"])
def test_a_checked_backbone_is_checked_again_without_torch(name, capsys):
    """The first check reads timm's metadata (this session's cache folder keeps it); the next imports no torch,
    timm or networkx (plants' variables refer to each other: they are ordered without networkx too)."""
    spec = next(spec for spec in SPECS if spec.stem == name)
    assert main(["check", str(spec)]) == 0
    heavy = ("torch", "timm", "networkx")
    code = (f"import sys; from mtdsl.cli import main; code = main(['check', {str(spec)!r}]); "
            f"loaded = [m for m in {heavy!r} if m in sys.modules]; assert not loaded, loaded; sys.exit(code)")
    source = str(Path(mtdsl.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"ok {spec}" in result.stdout
