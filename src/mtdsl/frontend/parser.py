"""Spec text → AST.

>>> from mtdsl.frontend.parser import parse
>>> tree = parse('model demo\\ninput 3x64x64', path="demo.mtl")
>>> tree.statements[1].shape.dims
(3, 64, 64)
"""

from __future__ import annotations

import ast as python_ast
import functools

import lark
from lark import Lark, Token, Transformer, v_args

from mtdsl.errors import Source, Span, SpecSyntaxError
from mtdsl.frontend import ast
from mtdsl.frontend.syntax_examples import SYNTAX_EXAMPLES


@functools.lru_cache(maxsize=1)
def grammar() -> Lark:
    return Lark.open(
        "grammar.lark",
        rel_to=__file__,
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=False,
    )


def parse(text: str, path: str = "<spec>") -> ast.SpecFile:
    """Parse spec text into an :class:`~mtdsl.frontend.ast.SpecFile`.

    Raises:
        SpecSyntaxError: with the position, a caret and the expected tokens.
    """
    source = Source(path, text)
    try:
        tree = grammar().parse(text)
    except lark.exceptions.UnexpectedInput as error:
        raise _syntax_error(error, text, source) from None
    try:
        return _ToAst().transform(tree)
    except lark.exceptions.VisitError as error:
        if isinstance(error.orig_exc, SpecSyntaxError):
            raise error.orig_exc.with_source(source) from None
        raise


def _span(meta_or_token: object) -> Span:
    item = meta_or_token
    return Span(item.line, item.column, item.end_line, item.end_column)  # type: ignore[attr-defined]


def _join(first: Span, last: Span) -> Span:
    return Span(first.line, first.column, last.end_line, last.end_column)


@v_args(meta=True, inline=True)
class _ToAst(Transformer):
    """One method per grammar rule, each returning a frozen AST node."""

    def start(self, meta, *statements):
        return ast.SpecFile(tuple(statements))

    # statements

    def model_stmt(self, meta, name: Token):
        return ast.ModelStatement(str(name), _span(name), _span(meta))

    def let_stmt(self, meta, name: Token, value):
        return ast.LetStatement(str(name), _span(name), value, _span(meta))

    def input_stmt(self, meta, token: Token):
        return ast.InputStatement(self.shape(meta, token), _span(meta))

    def backbone_stmt(self, meta, name: Token, source: ast.Call, body: ast.Block | None = None):
        return ast.BackboneStatement(str(name), _span(name), source, body, _span(meta))

    def dataset_stmt(self, meta, name: Token, source: ast.Call, body: ast.Block | None = None):
        return ast.DatasetStatement(str(name), _span(name), source, body, _span(meta))

    def task_stmt(self, meta, name: Token, kind: ast.Call, body: ast.Block | None = None):
        return ast.TaskStatement(str(name), _span(name), kind, body, _span(meta))

    def train_stmt(self, meta, body: ast.Block):
        return ast.TrainStatement(body, _span(meta))

    # blocks

    def block(self, meta, *entries):
        return ast.Block(tuple(entries), _span(meta))

    def assignment(self, meta, key: Token, value):
        return ast.Assignment(str(key), _span(key), value, _span(meta))

    def phase(self, meta, name: Token, body: ast.Block):
        return ast.Phase(str(name), _span(name), body, _span(meta))

    # values

    def string(self, meta, token: Token):
        return ast.String(python_ast.literal_eval(str(token)), _span(token))

    def number(self, meta, token: Token):
        text = str(token)
        is_integer = text.lstrip("-").isdigit()
        return ast.Number(int(text) if is_integer else float(text), _span(token))

    def shape(self, meta, token: Token):
        return ast.Shape(tuple(int(d) for d in str(token).split("x")), _span(token))

    def ratio(self, meta, *parts: Token):
        return ast.Ratio(tuple(float(p) for p in parts), _span(meta))

    def list(self, meta, *items):
        return ast.ListValue(tuple(items), _span(meta))

    def ref(self, meta, *parts: Token):
        return ast.Ref(tuple(str(p) for p in parts), _span(meta))

    def variable(self, meta, token: Token):
        return ast.Variable(str(token)[2:-1], _span(token))

    def name(self, meta, token: Token):
        return ast.Name(str(token), _span(token))

    def sum(self, meta, *terms):
        return ast.Sum(tuple(terms), _span(meta))

    def keyword_argument(self, meta, name: Token, value):
        return ast.KeywordArgument(str(name), _span(name), value, _span(meta))

    def call(self, meta, name: Token, *arguments):
        args = tuple(a for a in arguments if not isinstance(a, ast.KeywordArgument))
        kwargs = tuple(a for a in arguments if isinstance(a, ast.KeywordArgument))
        first_keyword = next(
            (i for i, a in enumerate(arguments) if isinstance(a, ast.KeywordArgument)), None
        )
        if first_keyword is not None:
            for late in arguments[first_keyword:]:
                if not isinstance(late, ast.KeywordArgument):
                    raise SpecSyntaxError(
                        f"positional argument after keyword arguments in '{name}(...)'",
                        late.span,
                        expected="positional arguments first, then key = value pairs",
                        hint="move it before the first 'key = value' or give it a key",
                    )
        return ast.Call(str(name), _span(name), args, kwargs, _span(meta))


_TOKEN_DESCRIPTIONS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "SHAPE": "a shape like 3x224x224",
    "VARIABLE": "a variable like ${data}",
    "EQUAL": "'='",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COLON": "':'",
    "COMMA": "','",
    "DOT": "'.'",
    "PLUS": "'+'",
    "SLASH": "'/'",
    "SEMICOLON": "';'",
    "$END": "end of file",
}


def _describe_expected(expected: set[str] | None) -> str | None:
    if not expected:
        return None
    words = []
    for name in sorted(expected):
        if name.startswith("__ANON") or name == "$END":
            continue
        words.append(_TOKEN_DESCRIPTIONS.get(name, name.lower().strip("_")))
    if "$END" in expected:
        words.append("end of file")
    return ", ".join(dict.fromkeys(words)) or None


def _syntax_error(error: lark.exceptions.UnexpectedInput, text: str, source: Source) -> SpecSyntaxError:
    label = error.match_examples(grammar().parse, SYNTAX_EXAMPLES, use_accepts=True)
    line, column = error.line, error.column
    if line is None or line < 0:
        lines = text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
    width = 1
    if isinstance(error, lark.exceptions.UnexpectedToken):
        token = error.token
        width = max(len(str(token)), 1) if token.type != "$END" else 1
        found = "end of file" if token.type == "$END" else f"'{token}'"
        expected = _describe_expected(error.accepts or error.expected)
    elif isinstance(error, lark.exceptions.UnexpectedCharacters):
        found = f"character {text[error.pos_in_stream]!r}"
        expected = _describe_expected(error.allowed)
    else:
        found = "end of file"
        expected = None
    message, hint = label if label else (f"unexpected {found}", None)
    if label:
        message = f"{message} (found {found})"
    span = Span(line, column, line, column + width)
    return SpecSyntaxError(message, span, source=source, expected=expected, hint=hint)
