"""Lowering a dataset's ``augment = [...]``: each op validated on its own, so an error points at that op.

>>> from mtdsl.frontend.parser import parse
>>> from mtdsl.spec.variables import Variables
>>> statement = parse('dataset d = folder("x") { augment = [flip, crop(scale = [0.3, 1])] }').statements[0]
>>> source, body, node = without_augment(statement.source, statement.body, "dataset 'd'")
>>> [op.kind for op in augment_ops(node, Variables({}, {}), "dataset 'd'")]
['flip', 'crop']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtdsl.errors import Span, SpecNameError, SpecValueError, listing
from mtdsl.frontend import ast
from mtdsl.spec.augment import AUGMENTS, AugmentConfig
from mtdsl.spec.values import build_config

if TYPE_CHECKING:
    from mtdsl.spec.variables import Variables

__all__ = ["augment_ops", "without_augment"]

KEY = "augment"


def without_augment(
    call: ast.Call, body: ast.Block | None, what: str
) -> tuple[ast.Call, ast.Block | None, ast.Value | None]:
    """``call`` and ``body`` without their ``augment`` argument or entry, and its value (``None``: not written).

    Raises:
        SpecNameError: ``augment`` is written twice.
    """
    found: list[tuple[ast.Value, Span]] = [(kw.value, kw.name_span) for kw in call.kwargs if kw.name == KEY]
    entries = body.entries if body is not None else ()
    found += [(entry.value, entry.key_span) for entry in entries if isinstance(entry, ast.Assignment)
              and entry.key == KEY]
    if len(found) > 1:
        first = found[0][1]
        raise SpecNameError(
            f"'{KEY}' is given twice in {what} (first on line {first.line}, column {first.column})",
            found[1][1],
            hint="keep one of them",
        )
    if not found:
        return call, body, None
    call = ast.Call(call.name, call.name_span, call.args, tuple(kw for kw in call.kwargs if kw.name != KEY), call.span)
    if body is not None:
        body = ast.Block(tuple(e for e in entries if not (isinstance(e, ast.Assignment) and e.key == KEY)), body.span)
    return call, body, found[0][0]


def augment_ops(node: ast.Value, variables: Variables, what: str) -> tuple[AugmentConfig, ...]:
    """The ops of ``augment = [...]``, in order.

    Raises:
        SpecValueError: the value is not a list, or an op's argument is out of range.
        SpecNameError: an op is unknown (the message lists the valid ones and the closest).
    """
    if not isinstance(node, ast.ListValue):
        raise SpecValueError(
            f"{KEY} in {what} is a list of ops",
            node.span,
            expected=f"[op, …] of: {listing(AUGMENTS.kinds(), limit=None)}",
            hint="write e.g. augment = [flip, crop(scale = [0.5, 1])], or augment = [] for none",
        )
    ops = [build_config(item, AUGMENTS, variables, f"{KEY} op in {what}") for item in node.items]
    return tuple(op for op in ops if isinstance(op, AugmentConfig))  # all of them: AUGMENTS holds only AugmentConfigs
