"""Spec file → validated :class:`~mtdsl.spec.document.Spec`: parse, lower, check.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.mtl"
>>> _ = path.write_text('model demo\\nbackbone trunk = timm("test_resnet")\\n'
...                     'dataset shapes = synthetic()\\ntask colour: classify(shapes) { classes = 3 }')
>>> load_spec(path).model.tasks["colour"].num_outputs
3
"""

from __future__ import annotations

import stat
from pathlib import Path

from mtdsl.errors import ArtefactError, MtdslError, Source, Span, SpecValueError
from mtdsl.frontend import ast
from mtdsl.frontend.parser import parse
from mtdsl.spec.checks import run_checks
from mtdsl.spec.document import Spec
from mtdsl.spec.lower import lower

#: The largest spec file read; real specs are a few KiB, and the cap keeps a wrong path
#: (a disk image, a log) from being read whole into memory.
MAX_SPEC_BYTES = 1 << 20


def override_value(name: str, raw: str) -> ast.Value:
    """The value of ``--set name=raw``: an mtdsl value if the whole text is one, else the text as a string.

    ``#`` does not start a comment here: ``--set data=/mnt/run#3`` is the path
    ``/mnt/run#3``, since a shell argument holds no comments.
    """
    if not name.isidentifier():
        raise SpecValueError(
            f"--set {name}={raw}: '{name}' is not a variable name",
            None,
            hint="e.g. --set data=../shared/data or --set epochs=5",
        )
    prefix = f"let {name} = "
    try:
        statement = parse(prefix + raw, path="<--set>").statements[0]
    except MtdslError:
        statement = None
    if isinstance(statement, ast.LetStatement) and statement.span.end_column == len(prefix + raw.rstrip()) + 1:
        return statement.value
    return ast.String(raw, Span(1, 1, 1, 2))  # not one value (a path, or text after '#'): take it verbatim


def load_text(text: str, path: str = "<spec>", overrides: dict[str, str] | None = None) -> Spec:
    """Parse, validate and check spec text; a leading byte-order mark is dropped (editors on Windows write one)."""
    text = text.removeprefix("\ufeff")
    source = Source(path, text)
    try:
        parsed_overrides = {name: override_value(name, raw) for name, raw in (overrides or {}).items()}
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
        _check_readable(path)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtefactError(f"spec file not found: {path}",
                            hint="check the path; specs usually live in specs/") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ArtefactError(f"cannot read spec {path}: {error}", hint="save the spec as UTF-8 text") from None
    return load_text(text, str(path), overrides)


def _check_readable(path: Path) -> None:
    """Refuse anything but a regular file of at most :data:`MAX_SPEC_BYTES`, before opening it.

    A FIFO would block the read forever, and ``/dev/zero`` would never end.
    """
    status = path.stat()
    if not stat.S_ISREG(status.st_mode):
        what = "a directory" if stat.S_ISDIR(status.st_mode) else "not a regular file"
        raise ArtefactError(
            f"spec path {path} is {what}",
            expected="a .mtl text file",
            hint="pass the path of the spec file itself, e.g. specs/plants.mtl",
        )
    if status.st_size > MAX_SPEC_BYTES:
        raise ArtefactError(
            f"spec file {path} is {status.st_size} bytes, more than the {MAX_SPEC_BYTES} a spec may have",
            expected="a .mtl text file of at most 1 MiB",
            hint="check the path: a spec is a few KiB of text",
        )
