"""``train { track = … }``: which experiment trackers a run feeds besides ``metrics.jsonl``.

``track = tensorboard``, ``track = [tensorboard, mlflow]``, or ``track = none``
(the default). The writers live in :mod:`mtdsl.train.run.tracking`, registered
under the same names; here are only the names, so the spec stays torch-free.

>>> from pydantic import TypeAdapter
>>> TypeAdapter(Trackers).validate_python("none"), TypeAdapter(Trackers).validate_python("mlflow")
((), ('mlflow',))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BeforeValidator

from mtdsl.errors import SpecNameError, SpecValueError, did_you_mean, listing
from mtdsl.frontend import ast
from mtdsl.spec.values import plain_value

if TYPE_CHECKING:
    from mtdsl.spec.variables import Variables

#: Every tracker a spec may name, in the order the docs list them.
TRACKERS = ("tensorboard", "mlflow")

Tracker = Literal["tensorboard", "mlflow"]


def _as_list(value: object) -> object:
    """``none`` is no tracker and one name is a list of one, so ``track = mlflow`` needs no brackets."""
    if value == "none" or value is None:
        return ()
    return (value,) if isinstance(value, str) else value


def _once_each(value: tuple[str, ...]) -> tuple[str, ...]:
    for name in value:
        if value.count(name) > 1:
            raise ValueError(f"'{name}' is listed twice; name each tracker once")
    return value


#: The trackers a run feeds, each once; ``()`` is none.
Trackers = Annotated[tuple[Tracker, ...], BeforeValidator(_as_list), AfterValidator(_once_each)]


def lower_track(node: ast.Value, variables: Variables | None) -> list[str]:
    """The names ``track = …`` gives, each checked where it is written.

    Raises:
        SpecNameError: a name that is no tracker (``wandb``), or one named twice.
        SpecValueError: ``none`` in a list of trackers, or a value that is not a name.
    """
    items = node.items if isinstance(node, ast.ListValue) else (node,)
    names: list[str] = []
    for item in items:
        name = plain_value(item, variables)
        if name == "none" and isinstance(node, ast.ListValue):
            raise SpecValueError("none turns tracking off, so it cannot be listed with trackers", item.span,
                                 hint="write track = none, or list only trackers")
        if name == "none":
            return []
        if not isinstance(name, str) or name not in TRACKERS:
            shown = name if isinstance(name, str) else repr(name)
            raise SpecNameError(f"unknown tracker '{shown}' in train {{ track }}", item.span,
                                expected=f"one of: {listing([*TRACKERS, 'none'])}, or a list such as "
                                         "[tensorboard, mlflow]",
                                hint=did_you_mean(str(name), TRACKERS))
        if name in names:
            raise SpecNameError(f"tracker '{name}' is listed twice", item.span, hint="name each tracker once")
        names.append(name)
    return names
