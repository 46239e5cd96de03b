"""Spec file → validated :class:`~mtdsl.spec.document.Spec`: parse, lower, check.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.mtl"
>>> _ = path.write_text('model demo\\nbackbone trunk = timm("test_resnet")\\n'
...                     'dataset shapes = synthetic()\\ntask colour: classify(shapes) { classes = 3 }')
>>> load_spec(path).model.tasks["colour"].num_outputs
3
"""

from __future__ import annotations

from pathlib import Path

import lark

from mtdsl.errors import ArtefactError, MtdslError, Source, SpecValueError
from mtdsl.frontend import ast
from mtdsl.frontend.parser import grammar, parse
from mtdsl.spec.checks import run_checks
from mtdsl.spec.document import Spec
from mtdsl.spec.lower import lower


def parse_override(text: str) -> tuple[str, ast.Value]:
    """``--set name=value``: the value is read as an mtdsl value if it parses as one, else as a string."""
    name, separator, raw = text.partition("=")
    name = name.strip()
    if not separator or not name.isidentifier():
        raise SpecValueError(
            f"--set {text!r} is not of the form NAME=VALUE",
            None,
            hint="e.g. --set data=../shared/data or --set epochs=5",
        )
    try:
        statement = parse(f"let {name} = {raw}", path="<--set>").statements[0]
        assert isinstance(statement, ast.LetStatement)
        value = statement.value
    except (MtdslError, lark.exceptions.LarkError):
        value = ast.String(raw, statement_span())
    return name, value


def statement_span():
    from mtdsl.errors import Span

    return Span(1, 1, 1, 2)


def load_text(text: str, path: str = "<spec>", overrides: dict[str, str] | None = None) -> Spec:
    parsed_overrides = dict(parse_override(f"{k}={v}") for k, v in (overrides or {}).items())
    source = Source(path, text)
    try:
        tree = parse(text, path)
        spec = lower(tree, source, parsed_overrides)
        return run_checks(spec)
    except MtdslError as error:
        raise error.with_source(source) from None


def load_spec(path: str | Path, overrides: dict[str, str] | None = None) -> Spec:
    """Read, parse, validate and check a ``.mtl`` file.

    Raises:
        MtdslError: any problem with the file, with its position and a fix.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtefactError(f"spec file not found: {path}", hint="check the path; specs usually live in specs/") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ArtefactError(f"cannot read spec {path}: {error}") from None
    grammar()
    return load_text(text, str(path), overrides)
