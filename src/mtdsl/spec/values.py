"""AST values → plain Python, and pydantic validation that reports source spans.

>>> from mtdsl.frontend.parser import parse
>>> call = parse('task t: classify(d) { head = mlp([512, 256], dropout = 0.2) }').statements[0].body.entries[0].value
>>> plain_value(call, None)
{'kind': 'mlp', 'args': [[512, 256]], 'dropout': 0.2}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from mtdsl.errors import Span, SpecNameError, SpecValueError, did_you_mean, listing
from mtdsl.frontend import ast
from mtdsl.spec.registry import MISPLACED_BOOLEAN, Config, Registry
from mtdsl.spec.variables import as_text

if TYPE_CHECKING:
    from mtdsl.spec.variables import Variables

ModelT = TypeVar("ModelT", bound=BaseModel)


#: The only booleans: the names ``true`` and ``false`` (not ``yes``, ``on``, ``1`` or ``"true"``).
BOOLEANS = {"true": True, "false": False}


def plain_value(node: ast.Value, variables: Variables | None) -> Any:
    """The Python value of an AST value, with variables substituted."""
    if isinstance(node, ast.String):
        return variables.interpolate(node.value, node.span) if variables else node.value
    if isinstance(node, ast.Number):
        return node.value
    if isinstance(node, ast.Shape):
        return list(node.dims)
    if isinstance(node, ast.Ratio):
        return list(node.parts)
    if isinstance(node, ast.Name):
        return BOOLEANS.get(node.id, node.id)
    if isinstance(node, ast.Variable):
        if variables is None:
            return f"${{{node.name}}}"
        return variables.lookup(node.name, node.span)
    if isinstance(node, ast.Ref):
        return node.dotted
    if isinstance(node, ast.Sum):
        return "+".join(as_text(plain_value(term, variables)) for term in node.terms)
    if isinstance(node, ast.ListValue):
        return [plain_value(item, variables) for item in node.items]
    if isinstance(node, ast.Call):
        result: dict[str, Any] = {"kind": node.name}
        if node.args:
            result["args"] = [plain_value(arg, variables) for arg in node.args]
        for keyword in node.kwargs:
            result[keyword.name] = plain_value(keyword.value, variables)
        return result
    raise TypeError(f"no lowering for AST node {type(node).__name__}")


#: Fields that lowering fills in from the statement itself (its name, its phases, its tasks), never from a key.
FILLED_BY_LOWERING = frozenset({"kind", "name", "phases", "tasks"})


class Fields:
    """Field values gathered from a call's arguments and a block's entries, with their spans."""

    def __init__(self, owner: str, span: Span) -> None:
        self.owner = owner
        self.span = span
        self.values: dict[str, Any] = {}
        self.value_spans: dict[str, Span] = {}
        self.key_spans: dict[str, Span] = {}

    def add(self, key: str, key_span: Span, value: Any, value_span: Span) -> None:
        if key in FILLED_BY_LOWERING - {"kind"}:
            raise SpecNameError(
                f"unknown key '{key}' in {self.owner}",
                key_span,
                hint="names come from the declaration itself, phases from 'phase NAME { … }' blocks, "
                "and task settings from each task's block",
            )
        if key in self.values:
            first = self.key_spans[key]
            raise SpecNameError(
                f"'{key}' is given twice in {self.owner} (first on line {first.line}, column {first.column})",
                key_span,
                hint="keep one of them",
            )
        self.values[key] = value
        self.value_spans[key] = value_span
        self.key_spans[key] = key_span

    def span_of(self, key: str) -> Span:
        return self.value_spans.get(key, self.span)


def validate(model: type[ModelT], fields: Fields, what: str) -> ModelT:
    """``model.model_validate(fields.values)``, turning pydantic errors into spanned errors."""
    try:
        return model.model_validate(fields.values)
    except ValidationError as error:
        raise _spanned(error, model, fields, what) from None


def _first_error(errors: list[Any]) -> Any:
    """The error to report: the first, unless a call was checked against a union.

    For ``ratio: float | Ramp`` and the value ``ramp(0.1)``, pydantic reports
    the float member first ("should be a valid number"); the member that takes
    calls explains the real mistake.
    """
    first = errors[0]
    if isinstance(first.get("input"), dict) and first["type"].endswith("_type"):
        for other in errors[1:]:
            if any(_is_union_member(part) for part in other["loc"]):
                return other
    return first


def _is_union_member(part: object) -> bool:
    """pydantic names union members in locations ('constrained-float', 'list[str]', 'Ramp')."""
    text = str(part)
    return "-" in text or "[" in text or text[:1].isupper()


def _shown(value: Any) -> str:
    """A value as the spec wrote it: ``ramp(…)`` for a call, else its repr."""
    if isinstance(value, dict) and "kind" in value:
        return f"{value['kind']}(…)"
    if isinstance(value, bool):
        return as_text(value)
    if isinstance(value, list):
        return "[" + ", ".join(_shown(item) for item in value) + "]"
    return repr(value)


def _spanned(error: ValidationError, model: type[BaseModel], fields: Fields, what: str) -> Exception:
    first = _first_error(error.errors())
    location = [str(part) for part in first["loc"] if not _is_union_member(part)]
    key = location[0] if location else None
    valid_keys = [name for name in model.model_fields if name not in FILLED_BY_LOWERING]
    if first["type"] == "extra_forbidden" and key is not None:
        unknown = [key] + [str(e["loc"][0]) for e in error.errors()
                           if e["type"] == "extra_forbidden" and len(e["loc"]) == 1 and str(e["loc"][0]) != key]
        return SpecNameError(
            f"unknown key '{key}' for {what}" if len(unknown) == 1 else
            f"unknown keys {', '.join(repr(name) for name in unknown)} for {what}",
            fields.key_spans.get(key, fields.span),
            expected=f"one of: {listing(valid_keys, limit=None)}",
            hint=did_you_mean(key, valid_keys),
        )
    if first["type"] == "missing" and len(location) == 1:
        return SpecValueError(
            f"{what} needs '{key}'",
            fields.span,
            hint=f"add '{key} = …'",
        )
    keywords_field = getattr(model, "keywords_field", None)
    shown_location = location[1:] if location and location[0] == keywords_field else location
    field = ".".join(shown_location)
    span = fields.span
    for length in range(len(location), 0, -1):
        prefix = ".".join(location[:length])
        if prefix in fields.value_spans:
            span = fields.value_spans[prefix]
            break
    value = first.get("input") if key else None
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if first["type"] == "missing" and location and location[-1].isdigit():
        field = ".".join(shown_location[:-1])  # a list or tuple one item short: show the whole value
        message = f"item {int(location[-1]) + 1} is missing"
    expected = None
    hint = None
    if first["type"] == "bool_type":
        expected = "true or false"
        hint = "write true or false"
    if first["type"] == "literal_error":
        expected = first["ctx"]["expected"]
        options = [option.strip(" '") for option in expected.replace(" or ", ",").split(",")]
        hint = did_you_mean(str(first.get("input")), options)
        message = f"'{first.get('input')}' is not a valid value"
    if message.startswith(MISPLACED_BOOLEAN):
        hint = 'write a number, or quote the word for text ("true"); true and false only set on/off fields'
    prefix = f"{field} = {_shown(value)} in {what}" if key and field else what
    return SpecValueError(f"{prefix}: {message[0].lower()}{message[1:]}", span, expected=expected, hint=hint)


def call_fields(call: ast.Call, config: type[Config], what: str, variables: Variables) -> Fields:
    """Map a call's positional and keyword arguments onto ``config``'s fields."""
    fields = Fields(what, call.span)
    fields.add("kind", call.name_span, call.name, call.name_span)
    if len(call.args) > len(config.positional):
        extra = call.args[len(config.positional)]
        takes = ", ".join(config.positional) or "no positional arguments"
        raise SpecValueError(
            f"too many positional arguments to {call.name}(...)",
            extra.span,
            expected=f"{call.name}({takes}, key = value, …)",
            hint="name the argument, e.g. key = value",
        )
    for name, arg in zip(config.positional, call.args):
        fields.add(name, arg.span, plain_value(arg, variables), arg.span)
    collected: dict[str, Any] = {}
    for keyword in call.kwargs:
        value = plain_value(keyword.value, variables)
        if config.keywords_field and keyword.name not in config.model_fields:
            if keyword.name in collected:
                raise SpecNameError(f"'{keyword.name}' is given twice", keyword.name_span, hint="keep one of them")
            collected[keyword.name] = value
            fields.key_spans[f"{config.keywords_field}.{keyword.name}"] = keyword.name_span
            fields.value_spans[f"{config.keywords_field}.{keyword.name}"] = keyword.value.span
            continue
        fields.add(keyword.name, keyword.name_span, value, keyword.value.span)
    if config.keywords_field:
        fields.values[config.keywords_field] = collected
        fields.value_spans.setdefault(config.keywords_field, call.span)
    return fields


def build_config(
    node: ast.Value, registry: Registry[Any], variables: Variables, what: str | None = None
) -> Config:
    """Validate a call such as ``mlp(512, dropout = 0.2)`` against its registered config.

    A bare name (``sgd``) is read as a call with no arguments.
    """
    if isinstance(node, ast.Name):
        node = ast.Call(node.id, node.span, (), (), node.span)
    if not isinstance(node, ast.Call):
        raise SpecValueError(
            f"expected {'an' if registry.what[0] in 'aeiou' else 'a'} {registry.what} "
            f"such as {registry.kinds()[0]}(...)",
            node.span,
            expected=f"one of: {listing(registry.kinds())}",
        )
    if node.name not in registry:
        raise SpecNameError(
            f"unknown {registry.what} '{node.name}'",
            node.name_span,
            expected=f"one of: {listing(registry.kinds())}",
            hint=did_you_mean(node.name, registry.kinds()),
        )
    config = registry.get(node.name)
    description = what or f"{registry.what} '{node.name}'"
    fields = call_fields(node, config, description, variables)
    return validate(config, fields, description)


def assignments(body: ast.Block | None, owner: str) -> list[ast.Assignment]:
    """A block's ``key = value`` entries.

    Raises:
        SpecNameError: the block holds a ``phase`` block, which only ``train { }`` may.
    """
    if body is None:
        return []
    for entry in body.entries:
        if isinstance(entry, ast.Phase):
            raise SpecNameError(
                f"'phase' blocks belong in 'train', not in {owner}",
                entry.span,
                hint="move it into the train { … } block",
            )
    return [entry for entry in body.entries if isinstance(entry, ast.Assignment)]


def block_fields(
    fields: Fields, body: ast.Block | None, variables: Variables, converters: Mapping[str, Any] | None = None
) -> Fields:
    """Add a block's ``key = value`` entries to ``fields``; ``converters`` lower call-valued keys."""
    for entry in assignments(body, fields.owner):
        convert = (converters or {}).get(entry.key)
        value = convert(entry.value) if convert else plain_value(entry.value, variables)
        fields.add(entry.key, entry.key_span, value, entry.value.span)
    return fields
