"""Reading spec text: line counting, byte-order marks, odd files, nesting, variables, booleans and ``--set``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtdsl.errors import ArtefactError, MtdslError, SpecSyntaxError, SpecValueError
from mtdsl.frontend.parser import MAX_NESTING, parse
from mtdsl.spec.load import MAX_SPEC_BYTES, load_spec, load_text

HEAD = 'model pets\nbackbone trunk = timm("test_resnet")\ndataset pets = synthetic(count = 32)\n'
TASK = "task breed: classify(pets) { classes = 3 }\n"


# ------------------------------------------------------------------ line counting

#: Characters that str.splitlines() takes as line ends but lark does not.
SEPARATORS = ["\x0c", "\x0b", "\x85", "\u2028", "\u2029", "\x1c", "\x1d", "\x1e", "\r"]
#: Those that lark's whitespace also skips between tokens.
BLANKS = ["\x0c", "\r"]

#: (a line with one mistake, the text the error must point at)
MISTAKES = [
    ("task breed: clasify(pets) { classes = 3 }", "clasify"),
    ("task breed: classify(pets) { clases = 3 }", "clases"),
    ("task breed: classify(pets) { classes = 3; head = linear(dropout = 2) }", "2)"),
    ("task breed: classify(pets) { classes = 3 @ }", "@"),
    ('task breed: classify(pets) { classes = 3; label = "a${}" }', "${}"),
]

noise = st.text(alphabet=st.sampled_from(SEPARATORS + list("ab #")), max_size=8)


@st.composite
def specs_with_separators(draw: st.DrawFn) -> tuple[str, int, int, str]:
    """(spec text, line, column, token): line separators in comments, strings and blanks before one mistake."""
    lines = [
        "model pets" + draw(st.sampled_from(BLANKS + [""])),
        f'let note = "{draw(noise)}"',
        'backbone trunk = timm("test_resnet")',
        "dataset pets = synthetic(count" + draw(st.sampled_from(BLANKS + [" "])) + "= 32)",
    ]
    lines = [line + (f" # {draw(noise)}" if draw(st.booleans()) else "") for line in lines]
    for _ in range(draw(st.integers(0, 3))):
        lines.insert(draw(st.integers(1, len(lines))), f"# {draw(noise)}")
    mistake, token = draw(st.sampled_from(MISTAKES))
    column = mistake.index(token) + 1
    return "\n".join(lines + [mistake]) + "\n", len(lines) + 1, column, token.split()[0]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs_with_separators())
def test_errors_show_the_line_lark_reported_with_the_caret_under_the_mistake(case: tuple[str, int, int, str]) -> None:
    text, line, column, token = case
    with pytest.raises(MtdslError) as caught:
        load_text(text, "separators.mtl")
    error = caught.value
    assert error.span is not None
    assert (error.span.line, error.span.column) == (line, column), error.render()
    source_line = text.split("\n")[line - 1]
    assert source_line[column - 1 :].startswith(token)
    rendered = error.render().split("\n")
    assert rendered[1].endswith(source_line), rendered
    gutter = len(rendered[1]) - len(source_line)
    assert rendered[2].index("^") == gutter + column - 1, rendered


def test_a_syntax_error_at_the_end_of_file_shows_the_last_line() -> None:
    text = HEAD + "task breed: classify(pets) {\x0c classes = 3\n\n"
    with pytest.raises(SpecSyntaxError) as caught:
        load_text(text, "eof.mtl")
    assert caught.value.span is not None
    assert text.split("\n")[caught.value.span.line - 1] in caught.value.render()


# ------------------------------------------------------------------ byte-order mark


def test_a_leading_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.mtl"
    path.write_bytes(("\ufeff" + HEAD + TASK).encode("utf-8"))
    assert load_spec(path).name == "pets"


def test_columns_after_a_byte_order_mark_count_from_the_first_character() -> None:
    with pytest.raises(SpecSyntaxError) as caught:
        load_text("\ufeffmodle pets\n" + HEAD + TASK, "bom.mtl")
    assert caught.value.span is not None and (caught.value.span.line, caught.value.span.column) == (1, 1)
    assert "\ufeff" not in caught.value.render()


# ------------------------------------------------------------------ spec files


def load_in_child(path: Path | str) -> str:
    """``load_spec(path)``'s error stage and message, from a child process with a time and memory limit.

    Reading /dev/zero never ends; in a child with a memory limit a regression
    fails the test instead of exhausting the machine's memory.
    """
    code = (
        "import os, resource, sys\n"
        "from mtdsl.errors import MtdslError\n"
        "from mtdsl.spec.load import load_spec\n"
        "mapped = int(open('/proc/self/statm').read().split()[0]) * os.sysconf('SC_PAGE_SIZE')\n"
        "resource.setrlimit(resource.RLIMIT_AS, (mapped + (1 << 30), mapped + (1 << 30)))\n"
        "try:\n"
        "    load_spec(sys.argv[1])\n"
        "except MtdslError as error:\n"
        "    print(error.stage + ': ' + error.message)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60, env=env
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"load_spec({path}) was still reading after 60 s")
    return done.stdout.strip() + done.stderr[-2000:]


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: opening a FIFO with no writer blocks until a signal interrupts it."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.mtl"
    os.mkfifo(fifo)
    with deadline(10), pytest.raises(ArtefactError, match="not a regular file"):
        load_spec(fifo)


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="no /dev/null here")
def test_a_device_is_refused() -> None:
    with pytest.raises(ArtefactError, match="not a regular file"):
        load_spec("/dev/null")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_dev_zero_is_refused_without_reading_it() -> None:
    """In a child process: a regression would read /dev/zero until memory runs out."""
    assert "not a regular file" in load_in_child("/dev/zero")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtefactError, match="is a directory"):
        load_spec(tmp_path)


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.mtl"
    with path.open("wb") as sparse:
        sparse.truncate(MAX_SPEC_BYTES + 1)
    with pytest.raises(ArtefactError, match="more than"):
        load_spec(path)


# ------------------------------------------------------------------ nesting

OPENERS = {"[": "]", "(": ")", "{": "}"}


@settings(max_examples=30, deadline=None)
@given(depth=st.integers(MAX_NESTING + 1, 5000), opener=st.sampled_from(["[", "f("]))
def test_values_nested_too_deep_are_a_located_syntax_error(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else ")"
    line = "let deep = " + opener * depth + closer * depth
    with pytest.raises(SpecSyntaxError, match=f"nested more than {MAX_NESTING} deep") as caught:
        load_text(HEAD + line + "\n" + TASK, "deep.mtl")
    span = caught.value.span
    assert span is not None and span.line == 4
    assert line[span.column - 1] == opener[-1]


def test_values_nested_up_to_the_limit_load() -> None:
    line = "let deep = " + "[" * MAX_NESTING + "]" * MAX_NESTING
    assert load_text(HEAD + line + "\n" + TASK, "deep.mtl").model.tasks


def test_set_values_nested_too_deep_do_not_recurse() -> None:
    deep = "[" * 3000 + "]" * 3000
    try:
        load_text("let x = 1\n" + HEAD + TASK, "deep.mtl", overrides={"x": deep})
    except MtdslError:
        pass


@pytest.mark.parametrize("count", [200, 1500])
@pytest.mark.parametrize("form", ['"${{v{0}}}"', "${{v{0}}}"], ids=["in a string", "whole value"])
@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_long_chains_of_variables_resolve(count: int, form: str, direction: str) -> None:
    """``let v1 = ${v0}`` … or ``let v0 = ${v1}`` …: each resolved after what it refers to, without recursion."""
    step = -1 if direction == "backward" else 1
    leaf = 0 if direction == "backward" else count - 1
    chain = "".join(
        f'let v{i} = "leaf"\n' if i == leaf else f"let v{i} = {form.format(i + step)}\n" for i in range(count)
    )
    spec = load_text(chain + HEAD + TASK, "chain.mtl")
    assert spec.variables[f"v{count - 1 - leaf}"] == "leaf"


# ------------------------------------------------------------------ ${…} references


@pytest.mark.parametrize("inside", ["${}", "${1a}", "${a", "$a", "${a-b}", "${ a}", "tail$", "${a}$"])
@pytest.mark.parametrize(
    "where",
    [
        'let root = "X"\n',
        'dataset extra = folder("X")\n',
        'let roots = ["ok", "X"]\n',
        'let call = folder("X")\n',
    ],
)
def test_every_dollar_opens_a_whole_reference(inside: str, where: str) -> None:
    line = where.replace("X", "data/" + inside)
    with pytest.raises(SpecSyntaxError) as caught:
        load_text(HEAD + line + TASK, "dollar.mtl")
    span = caught.value.span
    assert span is not None and span.line == 4
    dollar = line.index("data/") + len("data/") + inside.index("$", 1 if inside.startswith("${a}") else 0)
    assert span.column == dollar + 1, caught.value.render()


def test_set_values_are_taken_as_given() -> None:
    """A ``--set`` value is command-line text: no comments, and a ``$`` in it is not checked."""
    spec = load_text('let root = "data"\n' + HEAD + TASK, "set.mtl", overrides={"root": "/mnt/run#3"})
    assert spec.variables["root"] == "/mnt/run#3"
    spec = load_text('let root = "data"\n' + HEAD + TASK, "set.mtl", overrides={"root": "a #b"})
    assert spec.variables["root"] == "a #b"
    spec = load_text("let n = 1\n" + HEAD + TASK, "set.mtl", overrides={"n": "5"})
    assert spec.variables["n"] == 5


# ------------------------------------------------------------------ booleans

FLAGS = [
    ("neck pyr = bifpn(trunk, channels = 16, separable = V)\n"
     "task box: detect(pets) { classes = [circle, square, triangle] }\n", "separable"),
    ("train { optimizer = sgd(nesterov = V) }\n", "nesterov"),
    ("train { channels_last = V }\n", "channels_last"),
    ("task yes_no: binary(pets) { balanced = V }\n", "balanced"),
]


@pytest.mark.parametrize("value", ["yes", "no", "on", "off", "1", "0", '"true"', '"false"', "True", "t"])
@pytest.mark.parametrize("line, field", FLAGS, ids=[field for _, field in FLAGS])
def test_only_true_and_false_are_booleans(line: str, field: str, value: str) -> None:
    with pytest.raises(SpecValueError, match=field) as caught:
        load_text(HEAD + TASK + line.replace("V", value), "flags.mtl")
    assert caught.value.hint == "write true or false"
    assert caught.value.span is not None and caught.value.span.line >= 5


@pytest.mark.parametrize("value", ["true", "false"])
@pytest.mark.parametrize("line, field", FLAGS, ids=[field for _, field in FLAGS])
def test_true_and_false_set_booleans(line: str, field: str, value: str) -> None:
    load_text(HEAD + TASK + line.replace("V", value), "flags.mtl")


def test_a_boolean_variable_reads_as_the_spec_wrote_it() -> None:
    spec = load_text('let flag = true\nlet text = "on=${flag}"\n' + HEAD + TASK, "flags.mtl")
    assert spec.variables["flag"] is True and spec.variables["text"] == "on=true"


def test_parse_keeps_true_as_a_name() -> None:
    """The parser stays generic: ``true`` is a name until lowering reads it as a boolean."""
    assert parse("let t = true").statements[0].value.id == "true"


@pytest.mark.parametrize("raw", ["${nosuch}/x", "[${nosuch}]", "${nosuch}"])
def test_a_mistake_in_a_set_value_names_set_instead_of_a_spec_line(raw: str) -> None:
    """The value is command-line text: pointing into the spec's first line would show the wrong text."""
    with pytest.raises(MtdslError, match=r"--set root=") as caught:
        load_text('let root = "data"\n' + HEAD + TASK, "set.mtl", overrides={"root": raw})
    assert caught.value.span is None
