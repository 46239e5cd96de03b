"""A reference to a part of the model: ``trunk.stage3``, ``beans.head``, or a bare name such as ``pyramid``.

``branch``, ``tap`` and freeze targets name a backbone, a neck or a task,
optionally followed by one of its segments (or ``head``). Lowering builds the
reference once from the parser's dotted reference; everything downstream reads
:attr:`SegmentRef.owner` and :attr:`SegmentRef.segment` and never splits text.
``str(ref)`` is the reference as the spec wrote it, so messages and the spec's
JSON (hence its fingerprint) read as before.

>>> ref = SegmentRef.from_parts(("trunk", "stage3"))
>>> ref.owner, ref.segment, str(ref)
('trunk', 'stage3', 'trunk.stage3')
>>> SegmentRef.from_parts(("pyramid",)).segment is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema


@dataclass(frozen=True)
class SegmentRef:
    """``owner.segment``; ``segment`` is ``None`` when the owner is named whole (``tap = pyramid``)."""

    owner: str
    segment: str | None = None

    @classmethod
    def from_parts(cls, parts: tuple[str, ...]) -> SegmentRef:
        """The reference the parser read as ``parts`` (``trunk.stage3`` → ``("trunk", "stage3")``).

        A reference with more than one dot keeps the rest as its segment
        (``trunk.stage3.conv``), which names no segment and is reported as such.
        """
        return cls(parts[0], ".".join(parts[1:]) if len(parts) > 1 else None)

    @classmethod
    def parse(cls, text: str) -> SegmentRef:
        """A reference that reached the spec as text: a quoted string, a ``let`` value or the spec's JSON.

        >>> SegmentRef.parse("trunk.stage3") == SegmentRef("trunk", "stage3")
        True
        """
        owner, dot, segment = text.partition(".")
        return cls(owner, segment if dot else None)

    @property
    def is_whole(self) -> bool:
        """Whether the owner is named without a segment (``tap = pyramid``, ``freeze = [trunk]``)."""
        return self.segment is None

    def __str__(self) -> str:
        return self.owner if self.segment is None else f"{self.owner}.{self.segment}"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """A spec field takes a reference or its text, and serialises as text (``"trunk.stage3"``)."""
        from_text = core_schema.no_info_after_validator_function(cls.parse, core_schema.str_schema())
        return core_schema.json_or_python_schema(
            json_schema=from_text,
            python_schema=core_schema.no_info_wrap_validator_function(cls._built_or_text, from_text),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def _built_or_text(cls, value: Any, from_text: core_schema.ValidatorFunctionWrapHandler) -> SegmentRef:
        # Not a union: a wrong value (``freeze = [3]``) is reported as "a valid string", not as two mismatches.
        return value if isinstance(value, cls) else from_text(value)
