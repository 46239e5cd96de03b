"""lark's analysed grammar, kept as JSON in mtdsl's cache folder: reading it runs no code.

Analysing the grammar into LALR tables takes about 0.16 s, reading them back
about 0.03 s, so ``mtdsl check`` keeps them. lark's own ``cache=`` would pickle
the parser, and it unpickles the file it finds before it checks its hash: a
file planted in the cache folder (``$MTDSL_CACHE_DIR``, ``$XDG_CACHE_HOME``)
would run as code. Here the tables are the plain data lark's standalone
parsers embed (:meth:`lark.Lark.memo_serialize`), written as JSON, with the two
things JSON lacks (integer keys, tuples) tagged; from them lark rebuilds only
its own classes, each naming the classes it may make (:class:`lark.utils.Serialize`).
The options come from the caller, never from the file, and a file that is not
what :func:`save` wrote for this grammar and lark (another ``key``, bad JSON,
tables that do not load or parse) reads as absent, so the grammar is analysed
again and the file rewritten.

>>> import tempfile
>>> from lark import Lark
>>> options = {"parser": "lalr", "lexer": "basic"}
>>> path = Path(tempfile.mkdtemp()) / "g.json"
>>> save(path, "k1", Lark('start: "a"+', **options))
>>> load(path, "k1", options, probe="aa").parse("aaa").children
[]
>>> load(path, "k2", options, probe="aa") is None
True
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lark import Lark
from lark.grammar import Rule
from lark.lark import LarkOptions
from lark.lexer import TerminalDef

from mtdsl.files import write_atomic

__all__ = ["load", "save"]

_ITEMS, _TUPLE = "__mtdsl_items__", "__mtdsl_tuple__"


def save(path: Path, key: str, parser: Lark) -> None:
    """Keep ``parser``'s tables in ``path`` under ``key``; a file that cannot be written is no error."""
    data, memo = parser.memo_serialize([TerminalDef, Rule])
    data = {name: value for name, value in data.items() if name != "options"}
    try:
        write_atomic(path, json.dumps({"key": key, "data": _tagged(data), "memo": _tagged(memo)}))
    except (OSError, TypeError, ValueError):
        pass


def load(path: Path, key: str, options: dict[str, Any], probe: str) -> Lark | None:
    """The parser kept in ``path`` under ``key``, built with ``options``; ``None`` unless it loads and parses ``probe``.

    ``probe`` is a text the grammar accepts: tables that load but do not parse it are not the ones :func:`save` wrote.
    """
    try:
        kept = json.loads(path.read_text(encoding="utf-8"), object_hook=_untagged)
        if not isinstance(kept, dict) or kept.get("key") != key:
            return None
        data = {**kept["data"], "options": LarkOptions(dict(options)).serialize()}
        parser = Lark.load({"data": data, "memo": kept["memo"]})
        parser.parse(probe)
    except Exception:  # whatever a damaged or foreign file makes lark raise: analyse the grammar again
        return None
    return parser


def _tagged(value: Any) -> Any:
    """``value`` as JSON can hold it: a dict with a key that is not a string, and a tuple, become tagged dicts."""
    if isinstance(value, dict):
        if all(isinstance(name, str) for name in value):
            return {name: _tagged(item) for name, item in value.items()}
        return {_ITEMS: [[_tagged(name), _tagged(item)] for name, item in value.items()]}
    if isinstance(value, tuple):
        return {_TUPLE: [_tagged(item) for item in value]}
    if isinstance(value, list):
        return [_tagged(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"lark's tables hold a {type(value).__name__}, which JSON cannot keep")


def _untagged(value: dict[str, Any]) -> Any:
    """The dict or tuple :func:`_tagged` wrote (``json.loads`` calls this innermost first)."""
    if _ITEMS in value:
        return dict(value[_ITEMS])  # a key that was a tuple is one already
    if _TUPLE in value:
        return tuple(value[_TUPLE])
    return value
