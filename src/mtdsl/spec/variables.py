"""``let`` variables, ``--set`` overrides and ``${name}`` interpolation.

>>> from mtdsl.frontend.parser import parse
>>> tree = parse('let root = "/data"\\nlet beans = "${root}/beans"')
>>> Variables.from_spec(tree, {}).value("beans")
'/data/beans'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

from mtdsl.errors import GraphError, Span, SpecNameError, SpecSyntaxError, did_you_mean, listing
from mtdsl.frontend import ast

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DOLLAR_WITHOUT_BRACES = re.compile(r"\$(?!\{)")

BUILTINS = ("spec_dir",)


@dataclass(frozen=True)
class Override:
    """A ``--set name=value`` from the command line, already parsed into a value."""

    name: str
    value: ast.Value


def undefined_variable(name: str, span: Span, known: Iterable[str]) -> SpecNameError:
    known = list(known)
    return SpecNameError(
        f"undefined variable '${{{name}}}'",
        span,
        expected=f"a declared variable: {listing(known)}",
        hint=did_you_mean(name, known) or f"declare it with 'let {name} = …' or pass --set {name}=…",
    )


class Variables:
    """Resolved variables of one spec: ``let`` defaults, then overrides on top."""

    def __init__(self, values: dict[str, object], spans: dict[str, Span]) -> None:
        self._values = values
        self._spans = spans

    @classmethod
    def from_spec(
        cls, tree: ast.SpecFile, overrides: dict[str, ast.Value], spec_dir: Path | None = None
    ) -> Variables:
        lets: dict[str, ast.LetStatement] = {}
        for statement in tree.statements:
            if isinstance(statement, ast.LetStatement):
                if statement.name in BUILTINS:
                    raise SpecNameError(
                        f"'{statement.name}' is a built-in variable and cannot be redefined",
                        statement.name_span,
                        hint="choose another name",
                    )
                if statement.name in lets:
                    first = lets[statement.name].name_span
                    raise SpecNameError(
                        f"variable '{statement.name}' is defined twice (first on line {first.line})",
                        statement.name_span,
                        hint="remove one of the definitions or rename it",
                    )
                lets[statement.name] = statement
        for name in overrides:
            if name not in lets:
                raise SpecNameError(
                    f"--set {name}=…: the spec has no 'let {name} = …'",
                    None,
                    expected=f"one of its variables: {listing(lets) or 'none declared'}",
                    hint=did_you_mean(name, lets) or f"declare a default with 'let {name} = …'",
                )
        raw: dict[str, ast.Value] = {name: let.value for name, let in lets.items()}
        raw.update(overrides)
        spans = {name: let.name_span for name, let in lets.items()}
        resolver = _Resolver(raw, spec_dir)
        resolver.check_acyclic(lets)
        values = {name: resolver.resolve(name) for name in raw}
        values["spec_dir"] = str(spec_dir) if spec_dir else "."
        return cls(values, spans)

    def value(self, name: str) -> object:
        return self._values[name]

    def names(self) -> list[str]:
        return list(self._values)

    def lookup(self, name: str, span: Span) -> object:
        if name not in self._values:
            raise undefined_variable(name, span, self._values)
        return self._values[name]

    def interpolate(self, text: str, span: Span) -> str:
        """Replace each ``${name}`` in a string; errors point at the reference itself."""
        stray = _DOLLAR_WITHOUT_BRACES.search(text)
        if stray:
            raise SpecSyntaxError(
                "'$' in a string must start a variable reference like ${data}",
                span.shifted(stray.start() + 1, 1),
                hint="write ${name}, or remove the '$'",
            )

        def substitute(match: re.Match[str]) -> str:
            where = span.shifted(match.start() + 1, len(match.group(0)))
            return str(self.lookup(match.group(1), where))

        return _REFERENCE.sub(substitute, text)


class _Resolver:
    """Resolves variables that refer to other variables, in dependency order."""

    def __init__(self, raw: dict[str, ast.Value], spec_dir: Path | None) -> None:
        self.raw = raw
        self.spec_dir = spec_dir
        self.done: dict[str, object] = {"spec_dir": str(spec_dir) if spec_dir else "."}

    def references(self, value: ast.Value) -> list[tuple[str, Span]]:
        """Every ``${name}`` inside a value, nested lists and calls included."""
        if isinstance(value, ast.String):
            return [
                (m.group(1), value.span.shifted(m.start() + 1, len(m.group(0))))
                for m in _REFERENCE.finditer(value.value)
            ]
        if isinstance(value, ast.Variable):
            return [(value.name, value.span)]
        children: tuple[ast.Value, ...] = ()
        if isinstance(value, ast.ListValue):
            children = value.items
        elif isinstance(value, ast.Sum):
            children = value.terms
        elif isinstance(value, ast.Call):
            children = value.args + tuple(keyword.value for keyword in value.kwargs)
        return [reference for child in children for reference in self.references(child)]

    def check_acyclic(self, lets: dict[str, ast.LetStatement]) -> None:
        graph = nx.DiGraph()
        for name, value in self.raw.items():
            graph.add_node(name)
            written_here = name in lets and value is lets[name].value  # not a --set override
            stray = _DOLLAR_WITHOUT_BRACES.search(value.value) if isinstance(value, ast.String) else None
            if stray and written_here:
                raise SpecSyntaxError(
                    "'$' in a string must start a variable reference like ${data}",
                    value.span.shifted(stray.start() + 1, 1),
                    hint="write ${name}, or remove the '$'",
                )
            for reference, span in self.references(value):
                if reference in BUILTINS:
                    continue
                if reference not in self.raw:
                    raise undefined_variable(reference, span, self.raw)
                graph.add_edge(name, reference, span=span)
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            return
        names = [edge[0] for edge in cycle] + [cycle[0][0]]
        start = cycle[0][0]
        written_here = start in lets and self.raw[start] is lets[start].value
        raise GraphError(
            "variables refer to each other in a cycle: " + " → ".join(names),
            graph.edges[cycle[0][0], cycle[0][1]]["span"] if written_here else None,
            hint="give one of them a literal value",
        )

    def resolve(self, name: str) -> object:
        if name not in self.done:
            from mtdsl.spec.values import plain_value

            self.done[name] = plain_value(self.raw[name], self)  # type: ignore[arg-type]
        return self.done[name]

    def lookup(self, name: str, span: Span) -> object:
        return self.resolve(name)

    def interpolate(self, text: str, span: Span) -> str:
        return _REFERENCE.sub(lambda m: str(self.resolve(m.group(1))), text)
