"""Spec text → AST.

>>> from mtdsl.frontend.parser import parse
>>> tree = parse('model demo\\ninput 3x64x64', path="demo.mtl")
>>> tree.statements[1].shape.dims
(3, 64, 64)
"""

from __future__ import annotations

import functools
import hashlib
import math
import sys
from pathlib import Path

import lark
from lark import Lark, Token, Transformer, v_args

from mtdsl.cache import cache_folder
from mtdsl.errors import Source, Span, SpecSyntaxError, did_you_mean
from mtdsl.frontend import ast, grammar_cache
from mtdsl.frontend.syntax_examples import SYNTAX_EXAMPLES

#: How lark builds the parser. One lexer for every parser state: a contextual lexer splits
#: 'modelx' into 'model' 'x' and reads a keyword differently depending on the statement before it.
GRAMMAR_OPTIONS = {"parser": "lalr", "lexer": "basic", "propagate_positions": True, "maybe_placeholders": False}


@functools.lru_cache(maxsize=1)
def grammar() -> Lark:
    """The LALR parser; its analysed tables are kept as JSON in mtdsl's cache folder (:mod:`.grammar_cache`).

    Never through lark's ``cache=``, which unpickles whatever file it finds there.
    """
    text = Path(__file__).with_name("grammar.lark").read_text(encoding="utf-8")
    folder = cache_folder()
    kept = folder / f"grammar-lark-{lark.__version__}.json" if folder is not None else None
    key = hashlib.sha256(f"{lark.__version__}\n{sorted(GRAMMAR_OPTIONS.items())}\n{text}".encode()).hexdigest()
    if kept is not None and (parser := grammar_cache.load(kept, key, GRAMMAR_OPTIONS, probe="model m")) is not None:
        return parser
    parser = Lark(text, **GRAMMAR_OPTIONS)
    if kept is not None:
        grammar_cache.save(kept, key, parser)
    return parser


def parse(text: str, path: str = "<spec>") -> ast.SpecFile:
    """Parse spec text into an :class:`~mtdsl.frontend.ast.SpecFile`.

    Raises:
        SpecSyntaxError: with the position, a caret and the expected tokens.
    """
    source = Source(path, text)
    _check_nesting(text, source)
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


#: How deep brackets may nest. Real specs nest two or three deep; the limit keeps the
#: recursive passes after parsing (the AST transformer, lowering) far from Python's stack limit.
MAX_NESTING = 100


def _check_nesting(text: str, source: Source) -> None:
    """Refuse brackets nested more than :data:`MAX_NESTING` deep, before anything recurses on them.

    Text that does not lex is left to the parser, which reports it.
    """
    depth = 0
    try:
        for token in grammar().lex(text):
            if token.type in _BRACKETS:
                depth += 1
                if depth > MAX_NESTING:
                    raise SpecSyntaxError(
                        f"brackets nested more than {MAX_NESTING} deep",
                        _span(token),
                        source=source,
                        expected=f"at most {MAX_NESTING} levels of '[', '(' and '{{'",
                        hint="flatten the value; no setting takes lists or calls nested this deep",
                    )
            elif token.type in _CLOSING:
                depth = max(depth - 1, 0)
    except lark.exceptions.LarkError:
        return


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

    def input_stmt(self, meta, value: Token | ast.Call):
        shape = value if isinstance(value, ast.Call) else self.shape(meta, value)
        return ast.InputStatement(shape, _span(meta))

    def backbone_stmt(self, meta, name: Token, source: ast.Call, body: ast.Block | None = None):
        return ast.BackboneStatement(str(name), _span(name), source, body, _span(meta))

    def neck_stmt(self, meta, name: Token, source: ast.Call, body: ast.Block | None = None):
        return ast.NeckStatement(str(name), _span(name), source, body, _span(meta))

    def dataset_stmt(self, meta, name: Token, source: ast.Call, body: ast.Block | None = None):
        return ast.DatasetStatement(str(name), _span(name), source, body, _span(meta))

    def task_stmt(self, meta, name: Token, kind: ast.Call, body: ast.Block | None = None):
        return ast.TaskStatement(str(name), _span(name), kind, body, _span(meta))

    def train_stmt(self, meta, body: ast.Block):
        return ast.TrainStatement(body, _span(meta))

    # blocks

    def block(self, meta, *entries):
        return ast.Block(tuple(entries), _span(meta))

    def key(self, meta, token: Token):
        return token

    def assignment(self, meta, key: Token, value):
        return ast.Assignment(str(key), _span(key), value, _span(meta))

    def phase(self, meta, name: Token, body: ast.Block):
        return ast.Phase(str(name), _span(name), body, _span(meta))

    # values

    def string(self, meta, token: Token):
        return ast.String(_unescape(str(token)[1:-1], _span(token)), _span(token))

    def number(self, meta, token: Token):
        text = str(token)
        return ast.Number(_finite(text, int if text.lstrip("-").isdigit() else float, _span(token)), _span(token))

    def shape(self, meta, token: Token):
        span = _span(token)
        return ast.Shape(tuple(int(_finite(d, int, span)) for d in str(token).split("x")), span)

    def ratio(self, meta, *parts: Token):
        return ast.Ratio(tuple(_finite(str(p), float, _span(p)) for p in parts), _span(meta))

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

    def keyword_argument(self, meta, *parts):
        # ``scale(trunk.stage4 = 0.5)``: a dotted name keys a part of the model; the name spans every part.
        *names, value = parts
        first, last = _span(names[0]), _span(names[-1])
        name_span = Span(first.line, first.column, last.end_line, last.end_column)
        return ast.KeywordArgument(".".join(str(n) for n in names), name_span, value, _span(meta))

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


def _finite(text: str, kind: type[int] | type[float], span: Span) -> int | float:
    """A number literal's value; one too large for a float (``1e999``) is an error, never ``inf``.

    Integers keep their exact value (the schema bounds them), unless they have
    more digits than Python converts (``sys.get_int_max_str_digits``).
    """
    try:
        value = kind(text)
    except ValueError:
        value = math.inf
    if not math.isfinite(value):
        shown = text if len(text) <= 20 else text[:20] + "…"
        raise SpecSyntaxError(
            f"number {shown} is too large to represent",
            span,
            expected=f"a finite number, at most about {sys.float_info.max:.1e}",
            hint="no setting takes a value this large; check the exponent",
        )
    return value


_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


def _unescape(text: str, span: Span) -> str:
    """A string literal's contents with ``\\ \\" \\' \\n \\t`` replaced; other escapes are errors.

    Python's other escapes would silently turn ``"C:\\xdata"`` into ``"C:Úta"`` or
    fail on ``"C:\\Users"``, so they are refused with a pointer to the backslash.
    """
    parts: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "\\":
            parts.append(char)
            index += 1
            continue
        escaped = text[index + 1]  # the STRING terminal never ends in a lone backslash
        if escaped not in _ESCAPES:
            raise SpecSyntaxError(
                f"unknown escape '\\{escaped}' in a string",
                span.shifted(index + 1, 2),
                expected="\\\\, \\\", \\', \\n or \\t",
                hint="write paths with '/' (C:/Users/me/data) or double each backslash",
            )
        parts.append(_ESCAPES[escaped])
        index += 2
    return "".join(parts)


_BRACKETS = {
    # opener: (what it opens, opening text, closing text, closing terminal)
    "LBRACE": ("block", "{", "}", "RBRACE"),
    "LPAR": ("call", "(", ")", "RPAR"),
    "LSQB": ("list", "[", "]", "RSQB"),
}
_CLOSING = {closer: opener for opener, (_, _, _, closer) in _BRACKETS.items()}
_PARTS = {"block": "entry", "call": "argument", "list": "item"}
_STATEMENT_KEYWORDS = frozenset({"MODEL", "LET", "INPUT", "BACKBONE", "NECK", "DATASET", "TASK", "TRAIN"})
_KEYWORDS = tuple(sorted(keyword.lower() for keyword in _STATEMENT_KEYWORDS))
_NOT_A_STATEMENT = next(label for label in SYNTAX_EXAMPLES if label[0] == "expected a statement")


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
        if name in _STATEMENT_KEYWORDS and "NAME" in expected:
            continue  # a key that happens to be a keyword: 'a name' covers it
        words.append(_TOKEN_DESCRIPTIONS.get(name, name.lower().strip("_")))
    if "$END" in expected:
        words.append("end of file")
    return ", ".join(dict.fromkeys(words)) or None


def _state_number(error: lark.exceptions.UnexpectedInput) -> object:
    """The LALR state a parse failed in.

    lark's ``ParserState`` also compares the depth of the parse stack, which
    differs between an example and the same mistake after other statements.
    """
    state = error.state
    return getattr(state, "position", state)


def _match_examples(error: lark.exceptions.UnexpectedToken) -> tuple[str, str] | None:
    """The label of :data:`SYNTAX_EXAMPLES` whose snippet fails in the same parser state as ``error``."""
    fallback = None
    for label, examples in SYNTAX_EXAMPLES.items():
        for example in examples:
            try:
                grammar().parse(example)
            except lark.exceptions.UnexpectedToken as other:
                if _state_number(other) != _state_number(error) or other.accepts != error.accepts:
                    continue
                if other.token.type == error.token.type:
                    return label
                fallback = fallback or label
            except lark.exceptions.UnexpectedInput:
                continue
    return fallback


def _starts_statement(token: Token | None) -> bool:
    """A statement keyword at the start of a line: the next statement, not part of the one before."""
    return token is not None and token.type in _STATEMENT_KEYWORDS and token.column == 1


def _tokens_before(error: lark.exceptions.UnexpectedToken, text: str) -> list[Token] | None:
    """The tokens read before the failing one, or ``None`` if that text does not lex."""
    end = len(text) if error.token.type == "$END" else error.token.start_pos
    try:
        return list(grammar().lex(text[:end]))
    except lark.exceptions.LarkError:
        return None


def _unclosed_bracket(error: lark.exceptions.UnexpectedToken, text: str, tokens: list[Token]) -> Token | None:
    """The innermost '{', '(' or '[' left open when the parse stopped, if a missing closer explains the error.

    That is the case when the parser stopped at the end of the file, at a
    closer of another kind, or at the next statement (a keyword at the start
    of a line, or just after one that was read as a key such as ``input``).
    """
    token = error.token
    opened: list[Token] = []
    for item in tokens:
        if item.type in _BRACKETS:
            opened.append(item)
        elif item.type in _CLOSING and opened and opened[-1].type == _CLOSING[item.type]:
            opened.pop()
    if not opened:
        return None
    previous = tokens[-1] if tokens else None
    if _starts_statement(previous):
        return opened[-1]
    if opened[-1].type == "LSQB" and previous is not None and token.line > previous.end_line:
        if _next_is_entry(text, token):
            return opened[-1]  # a list never holds 'key = value': the block's next entry follows
    closer = _BRACKETS[opened[-1].type][3]
    stopped_early = token.type == "$END" or token.type in _CLOSING or _starts_statement(token)
    return opened[-1] if stopped_early and closer in (error.accepts or error.expected) else None


def _next_is_entry(text: str, token: Token) -> bool:
    """Whether ``token`` starts a ``key = value`` entry."""
    if token.type != "NAME":
        return False
    try:
        following = grammar().lex(text[token.end_pos :])
        return next(following).type == "EQUAL"
    except (lark.exceptions.LarkError, StopIteration):
        return False


def _allowed_before(text: str, position: int) -> set[str] | None:
    """Terminals the parser would accept at ``position`` (for an unexpected character there)."""
    try:
        interactive = grammar().parse_interactive(text[:position])
        interactive.exhaust_lexer()
        return set(interactive.accepts())
    except lark.exceptions.LarkError:
        return None


def _syntax_error(error: lark.exceptions.UnexpectedInput, text: str, source: Source) -> SpecSyntaxError:
    line, column = error.line, error.column
    if line is None or line < 0:
        lines = text.rstrip("\n").split("\n")  # lark's line count: only "\n" ends a line
        line, column = len(lines), len(lines[-1]) + 1
    width = 1
    label = None
    if isinstance(error, lark.exceptions.UnexpectedToken):
        token = error.token
        width = max(len(str(token)), 1) if token.type != "$END" else 1
        found = "end of file" if token.type == "$END" else f"'{token}'"
        expected = _describe_expected(error.accepts or error.expected)
        tokens = _tokens_before(error, text)
        opener = _unclosed_bracket(error, text, tokens) if tokens is not None else None
        if opener is not None and tokens is not None:
            keyword = tokens[-1] if token.type != "$END" and _starts_statement(tokens[-1]) else None
            if keyword is not None and keyword.line is not None and keyword.column is not None:
                line, column, width, found = keyword.line, keyword.column, len(keyword), f"'{keyword}'"
            what, opening, closing, _ = _BRACKETS[opener.type]
            return SpecSyntaxError(
                f"unclosed {what}: '{opening}' on line {opener.line} has no matching '{closing}' (found {found})",
                Span(line, column, line, column + width),
                source=source,
                expected=f"'{closing}' before {found}",
                hint=f"add '{closing}' after the {what}'s last {_PARTS[what]}",
            )
        label = _match_examples(error)
        if label is None and token.type == "NAME" and "TASK" in (error.accepts or error.expected):
            label = _NOT_A_STATEMENT
            hint = did_you_mean(str(token), _KEYWORDS)
            if hint:
                label = (label[0], f"{hint} {label[1]}")
    elif isinstance(error, lark.exceptions.UnexpectedCharacters):
        position = error.pos_in_stream or 0
        found = f"character {text[position]!r}"
        expected = _describe_expected(_allowed_before(text, position))
    else:
        found = "end of file"
        expected = None
    message, hint = label if label else (f"unexpected {found}", None)
    if label:
        message = f"{message} (found {found})"
    span = Span(line, column, line, column + width)
    return SpecSyntaxError(message, span, source=source, expected=expected, hint=hint)
