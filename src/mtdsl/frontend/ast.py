"""The abstract syntax tree of a .mtl file.

Every node is a frozen dataclass that carries the :class:`~mtdsl.errors.Span`
of the text it came from, so any later stage can point at the exact source.
Lark's parse trees never leave the front end; these nodes are what it hands on.
"""

from __future__ import annotations

from dataclasses import dataclass

from mtdsl.errors import Span

# --------------------------------------------------------------------- values


@dataclass(frozen=True)
class String:
    """A quoted string; ``${var}`` references inside it are resolved when lowering."""

    value: str
    span: Span


@dataclass(frozen=True)
class Number:
    value: int | float
    span: Span


@dataclass(frozen=True)
class Shape:
    """``3x224x224``: channels x height x width."""

    dims: tuple[int, ...]
    span: Span


@dataclass(frozen=True)
class Ratio:
    """``0.65/0.10/0.25``: a split into parts."""

    parts: tuple[float, ...]
    span: Span


@dataclass(frozen=True)
class Name:
    """A bare identifier used as a value: ``imagenet``, ``given``, a task name."""

    id: str
    span: Span


@dataclass(frozen=True)
class Variable:
    """``${epochs}`` used as a whole value; replaced by the ``let`` value or a ``--set`` override."""

    name: str
    span: Span


@dataclass(frozen=True)
class Ref:
    """A dotted reference such as ``trunk.stage3``."""

    parts: tuple[str, ...]
    span: Span

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Sum:
    """``avg+max``: terms combined, as in the pooling of thesis Fig. 6.3."""

    terms: tuple[Value, ...]
    span: Span


@dataclass(frozen=True)
class ListValue:
    items: tuple[Value, ...]
    span: Span


@dataclass(frozen=True)
class KeywordArgument:
    name: str
    name_span: Span
    value: Value
    span: Span


@dataclass(frozen=True)
class Call:
    """``mlp(512, dropout = 0.2)``: a kind with positional and keyword arguments."""

    name: str
    name_span: Span
    args: tuple[Value, ...]
    kwargs: tuple[KeywordArgument, ...]
    span: Span


Value = String | Number | Shape | Ratio | Name | Variable | Ref | Sum | ListValue | Call

# --------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Assignment:
    key: str
    key_span: Span
    value: Value
    span: Span


@dataclass(frozen=True)
class Phase:
    """``phase heads { epochs = 10; freeze = [trunk] }`` inside ``train``."""

    name: str
    name_span: Span
    body: Block
    span: Span


@dataclass(frozen=True)
class Block:
    entries: tuple[Assignment | Phase, ...]
    span: Span


# ----------------------------------------------------------------- statements


@dataclass(frozen=True)
class ModelStatement:
    name: str
    name_span: Span
    span: Span


@dataclass(frozen=True)
class LetStatement:
    name: str
    name_span: Span
    value: Value
    span: Span


@dataclass(frozen=True)
class InputStatement:
    """``input 3x224x224``, or ``input efficientdet(0)`` (a size named by a scaling rule)."""

    shape: Shape | Call
    span: Span


@dataclass(frozen=True)
class BackboneStatement:
    name: str
    name_span: Span
    source: Call
    body: Block | None
    span: Span


@dataclass(frozen=True)
class NeckStatement:
    """``neck pyramid = bifpn(trunk, channels = 64)``: a feature pyramid on a backbone's maps."""

    name: str
    name_span: Span
    source: Call
    body: Block | None
    span: Span


@dataclass(frozen=True)
class DatasetStatement:
    name: str
    name_span: Span
    source: Call
    body: Block | None
    span: Span


@dataclass(frozen=True)
class TaskStatement:
    """``task bean_health: classify(ibean) { ... }``; ``kind`` holds ``classify(ibean)``."""

    name: str
    name_span: Span
    kind: Call
    body: Block | None
    span: Span


@dataclass(frozen=True)
class TrainStatement:
    body: Block
    span: Span


Statement = (
    ModelStatement
    | LetStatement
    | InputStatement
    | BackboneStatement
    | NeckStatement
    | DatasetStatement
    | TaskStatement
    | TrainStatement
)


@dataclass(frozen=True)
class SpecFile:
    """A whole parsed file."""

    statements: tuple[Statement, ...]
