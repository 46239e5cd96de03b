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

from mtdsl.errors import GraphError, Span, SpecNameError, SpecSyntaxError, did_you_mean, listing
from mtdsl.frontend import ast

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: A '$' that does not open a whole reference: '$x', '${}', '${1a}', '${a' (unclosed).
_STRAY_DOLLAR = re.compile(r"\$(?!\{[A-Za-z_][A-Za-z0-9_]*\})")

BUILTINS = ("spec_dir",)


@dataclass(frozen=True)
class Override:
    """A ``--set name=value`` from the command line, already parsed into a value."""

    name: str
    value: ast.Value


def undefined_variable(name: str, span: Span | None, known: Iterable[str]) -> SpecNameError:
    known = list(known)
    return SpecNameError(
        f"undefined variable '${{{name}}}'",
        span,
        expected=f"a declared variable: {listing(known)}",
        hint=did_you_mean(name, known) or f"declare it with 'let {name} = …' or pass --set {name}=…",
    )


def as_text(value: object) -> str:
    """A value inserted into a string, spelled as the spec spells it (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_references(text: str, span: Span) -> None:
    """Every ``$`` in a string literal opens a whole ``${name}`` reference.

    Args:
        text: the string's contents.
        span: the string literal, quotes included.

    Raises:
        SpecSyntaxError: at the first ``$`` that does not, e.g. in ``"$x"``, ``"${}"``, ``"${1a}"`` or ``"${a"``.
    """
    stray = _STRAY_DOLLAR.search(text)
    if stray is None:
        return
    after = text[stray.end() :]
    if not after.startswith("{"):
        problem = "'$' in a string must start a variable reference like ${data}"
    elif "}" not in after:
        problem = "'${' is never closed with '}'"
    else:
        problem = f"'${after[: after.index('}') + 1]}' is not a variable reference: a name starts with a letter or '_'"
    raise SpecSyntaxError(
        problem,
        span.shifted(stray.start() + 1, 1),
        expected="${name}, with name made of letters, digits and '_', not starting with a digit",
        hint="write ${name}, or remove the '$'",
    )


def _strings(value: ast.Value) -> list[ast.String]:
    """Every string literal inside a value, nested lists and calls included."""
    if isinstance(value, ast.String):
        return [value]
    return [string for child in _children(value) for string in _strings(child)]


def _children(value: ast.Value) -> tuple[ast.Value, ...]:
    if isinstance(value, ast.ListValue):
        return value.items
    if isinstance(value, ast.Sum):
        return value.terms
    if isinstance(value, ast.Call):
        return value.args + tuple(keyword.value for keyword in value.kwargs)
    return ()


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
        for name in resolver.dependency_order(lets):
            resolver.resolve(name)
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
        check_references(text, span)

        def substitute(match: re.Match[str]) -> str:
            where = span.shifted(match.start() + 1, len(match.group(0)))
            return as_text(self.lookup(match.group(1), where))

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
        return [reference for child in _children(value) for reference in self.references(child)]

    def dependency_order(self, lets: dict[str, ast.LetStatement]) -> list[str]:
        """The variables, each after those it refers to, so resolving them in turn never recurses.

        Raises:
            GraphError: variables refer to each other in a cycle.
        """
        references: dict[str, list[tuple[str, Span]]] = {}
        for name, value in self.raw.items():
            references[name] = []
            written_here = name in lets and value is lets[name].value
            if written_here:  # a --set value is text, taken as given
                for string in _strings(value):
                    check_references(string.value, string.span)
            for reference, span in self.references(value):
                if reference in BUILTINS:
                    continue
                if reference not in self.raw:
                    if written_here:
                        raise undefined_variable(reference, span, self.raw)
                    error = undefined_variable(reference, None, self.raw)  # no position: the text is not the spec's
                    error.message = f"--set {name}=…: {error.message}"
                    raise error
                references[name].append((reference, span))
        order = topological_order({name: [ref for ref, _ in refs] for name, refs in references.items()})
        if order is not None:
            return list(reversed(order))
        import networkx as nx  # only to name a cycle: a spec without one does not load networkx

        graph = nx.DiGraph()
        for name, refs in references.items():
            graph.add_node(name)
            for reference, span in refs:
                graph.add_edge(name, reference, span=span)
        cycle = nx.find_cycle(graph)
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
        return _REFERENCE.sub(lambda m: as_text(self.resolve(m.group(1))), text)


def topological_order(references: dict[str, list[str]]) -> list[str] | None:
    """Each name before the names it refers to, in ``networkx.topological_sort``'s order; ``None`` on a cycle.

    The graph is the one built by ``add_node(name)`` and then ``add_edge(name, reference)`` for
    each name in turn; its nodes are taken generation by generation (Kahn's algorithm), each
    generation in the order the nodes entered the graph, as networkx does.

    >>> topological_order({"a": ["b"], "b": [], "c": ["a"]})
    ['c', 'a', 'b']
    >>> topological_order({"a": ["b"], "b": ["a"]}) is None
    True
    """
    nodes: dict[str, None] = {}
    children: dict[str, dict[str, None]] = {}
    for name, refs in references.items():
        nodes.setdefault(name)
        for reference in refs:
            nodes.setdefault(reference)
            children.setdefault(name, {}).setdefault(reference)  # a repeated edge is one edge
    indegree = dict.fromkeys(nodes, 0)
    for targets in children.values():
        for target in targets:
            indegree[target] += 1
    generation = [node for node in nodes if indegree[node] == 0]
    order: list[str] = []
    while generation:
        order += generation
        following = []
        for node in generation:
            for child in children.get(node, {}):
                indegree[child] -= 1
                if indegree[child] == 0:
                    following.append(child)
        generation = following
    return order if len(order) == len(nodes) else None
