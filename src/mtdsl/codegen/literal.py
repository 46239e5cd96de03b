r"""Values and text → Python source that is safe to paste into generated files.

Everything the generators write into ``model.py`` and ``train.py`` that did not
come from mtdsl's own templates (paths, names, numbers, configs) passes through
one of two doors:

* :func:`literal` for values: an expression that rebuilds the value exactly,
  whatever its strings hold and whatever its floats are;
* :func:`docstring_text` for text shown inside a docstring: escaped so that the
  docstring stays one string and reads back as the original text.

:func:`checked_source` then refuses a generated file that would not compile or
that reads a name nothing defines (a bare ``inf`` once slipped through that way).

>>> print(literal({"lr": 1e999, "layers": (64,)}))
{'lr': float('inf'), 'layers': (64,)}
>>> print(docstring_text('C:\\new "x"'))
C:\\new \"x\"
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import math
import symtable

from pydantic import BaseModel

_BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__", "__doc__", "__spec__", "__builtins__"}


class GeneratedCodeError(RuntimeError):
    """mtdsl's own bug: a generated file would not compile, or a value cannot be written as Python."""


def literal(value: object, classes: set[type] | None = None) -> str:
    """A Python expression that evaluates to ``value``.

    Handles ``None``, ``bool``, ``int``, ``float`` (non-finite ones as ``float('inf')``),
    ``str``, tuples, lists, dicts, dataclass instances and pydantic models (as keyword calls
    of their class, checked to rebuild an equal object). The classes of those calls are
    added to ``classes``, so the caller can import exactly what the expression names.

    Raises:
        GeneratedCodeError: the value is of a type whose source form is not known, or its
            class would not rebuild it from its fields.
    """
    kind = type(value)  # exact types: a subclass (an IntEnum, a named tuple) is not written as its base
    if value is None or kind in (bool, int, str):
        return repr(value)
    if isinstance(value, float) and kind is float:
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, tuple) and kind is tuple:
        items = [literal(item, classes) for item in value]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    if isinstance(value, list) and kind is list:
        return f"[{', '.join(literal(item, classes) for item in value)}]"
    if isinstance(value, dict) and kind is dict:
        return "{" + ", ".join(f"{literal(k, classes)}: {literal(v, classes)}" for k, v in value.items()) + "}"
    if isinstance(value, BaseModel):
        return _call(value, _model_fields(value), classes)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
        return _call(value, fields, classes)
    raise GeneratedCodeError(f"cannot write a {kind.__name__} into generated code: {value!r}")


#: The longest line :func:`wrapped_literal` writes, where the values allow (a long string stays one token).
WIDTH = 110


def wrapped_literal(value: object, classes: set[type] | None = None, *, start: int = 0,
                    width: int = WIDTH) -> str:
    """:func:`literal`, filled onto lines of at most ``width`` columns where it would run past them.

    ``start`` is the column the value begins at. A call, list, tuple or dict that does not fit
    goes on with its items on the next lines, aligned after its opening bracket, as many to a
    line as fit; an item that fits on no line is wrapped the same way. The expression is the same:

    >>> print(wrapped_literal({"alpha": (1.0, 2.0), "beta": "x" * 8, "gamma": None}, width=30))
    {'alpha': (1.0, 2.0),
     'beta': 'xxxxxxxx',
     'gamma': None}
    """
    flat = literal(value, classes)
    if start + len(flat) <= width:
        return flat
    kind = type(value)
    items: list[tuple[str, object]]
    if isinstance(value, (list, tuple)) and kind in (list, tuple):
        items = [("", child) for child in value]
        opening, closing = ("[", "]") if kind is list else ("(", ",)" if len(value) == 1 else ")")
    elif isinstance(value, dict) and kind is dict:
        items, opening, closing = [(f"{literal(key)}: ", child) for key, child in value.items()], "{", "}"
    elif isinstance(value, BaseModel):
        items = [(f"{name}=", item) for name, item in _model_fields(value).items()]
        opening, closing = f"{kind.__name__}(", ")"
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [(f"{f.name}=", getattr(value, f.name)) for f in dataclasses.fields(value) if f.init]
        opening, closing = f"{kind.__name__}(", ")"
    else:
        return flat  # a number or a string: one token, however long
    if not items:
        return flat
    column = start + len(opening)
    text, at = opening, column  # ``at``: the column the next character lands on
    for index, (prefix, child) in enumerate(items):
        trailer = closing if index == len(items) - 1 else ","
        piece = prefix + literal(child) + trailer
        if index and at + 1 + len(piece) <= width:
            text, at = text + " " + piece, at + 1 + len(piece)
            continue
        if index:
            text, at = text + "\n" + " " * column, column
        piece = prefix + wrapped_literal(child, classes, start=at + len(prefix), width=width) + trailer
        text += piece
        last_line = piece.rsplit("\n", 1)[-1]
        at = (at if "\n" not in piece else 0) + len(last_line)
    return text


def _model_fields(value: BaseModel) -> dict[str, object]:
    """A model's fields as a call writes them: all but those of its ``written_when_set`` left at their default."""
    fields = type(value).model_fields
    quiet = getattr(type(value), "written_when_set", ())
    return {name: getattr(value, name) for name, field in fields.items()
            if name not in quiet or getattr(value, name) != field.get_default(call_default_factory=True)}


def _call(value: object, fields: dict[str, object], classes: set[type] | None) -> str:
    kind = type(value)
    try:
        rebuilt = kind(**fields)
    except (ValueError, TypeError) as error:  # pydantic's ValidationError is a ValueError
        raise GeneratedCodeError(f"{kind.__name__} does not rebuild from its fields: {value!r} ({error})") from None
    if rebuilt != value:
        raise GeneratedCodeError(f"{kind.__name__} does not rebuild from its fields: {value!r}")
    if classes is not None:
        classes.add(kind)
    arguments = ", ".join(f"{name}={literal(field, classes)}" for name, field in fields.items())
    return f"{kind.__name__}({arguments})"


def docstring_text(text: str) -> str:
    """``text`` escaped for a ``\"\"\"`` docstring: backslashes, quotes and unprintable characters.

    Printable characters, non-ASCII letters included, stay as they are, so the reader
    sees the text, and the docstring's value is exactly ``text``.
    """
    return "".join(_docstring_character(character) for character in text)


def _docstring_character(character: str) -> str:
    if character in '\\"':
        return "\\" + character
    if character.isprintable():
        return character
    return repr(character)[1:-1]


def checked_source(source: str, filename: str) -> str:
    """``source`` itself, once it compiles and every global name it reads is bound or built in.

    Raises:
        GeneratedCodeError: the generated file is broken; that is mtdsl's bug, not the spec's.
    """
    try:
        compile(source, filename, "exec", dont_inherit=True)
        table = symtable.symtable(source, filename, "exec")
    except (SyntaxError, ValueError) as error:
        raise GeneratedCodeError(f"generated {filename} does not compile: {error}") from error
    bound = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    unbound = sorted(_global_reads(table) - bound - _BUILTINS)
    if unbound:
        raise GeneratedCodeError(f"generated {filename} reads undefined names: {', '.join(unbound)}")
    return source


def _global_reads(table: symtable.SymbolTable) -> set[str]:
    names = {
        s.get_name()
        for s in table.get_symbols()
        if s.is_referenced() and (table.get_type() == "module" or s.is_global())
    }
    for child in table.get_children():
        names |= _global_reads(child)
    return names


def imported_names(import_lines: list[str]) -> set[str]:
    """The names a block of import statements binds."""
    names = set()
    for statement in ast.parse("\n".join(import_lines)).body:
        if not isinstance(statement, (ast.Import, ast.ImportFrom)):
            continue
        for alias in statement.names:
            names.add(alias.asname or alias.name.partition(".")[0])
    return names
