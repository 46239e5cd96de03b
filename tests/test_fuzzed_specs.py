"""Fuzzing the whole compile path: any spec text compiles into valid Python, or fails with a located mtdsl error.

Each case is a spec text, built from the grammar (:func:`spec_strategies.structured_specs`)
or a shipped/corpus spec with random edits (:func:`spec_strategies.mutated_specs`). It
runs parse → checks → sharing graph → ``model.py`` and ``train.py`` → Python ``compile()``
of both → graph JSON, diagram and summary, on tiny backbones. A case fails when

* anything but an :class:`~mtdsl.errors.MtdslError` escapes;
* an error has no span, or the source line it shows is not the line lark means
  (``text.split("\\n")[line - 1]``), or its column lies outside that line;
* a generated file does not compile.

The default suite runs ``SHARDS × EXAMPLES`` cases per family with fixed seeds;
``MTDSL_FUZZ_EXAMPLES=N`` sets the examples per shard; the ``slow`` tests run ``MTDSL_FUZZ_SLOW_EXAMPLES``
(5,000 by default) per family.
"""

from __future__ import annotations

import os
import zlib

import pytest
from conftest import tiny_backbones
from hypothesis import HealthCheck, seed, settings
from hypothesis import given as hypothesis_given
from spec_strategies import mutated_specs, structured_specs

from mtdsl.codegen.model_source import generate_model_source
from mtdsl.codegen.train_source import generate_train_source
from mtdsl.compiler import compile_spec
from mtdsl.errors import MtdslError
from mtdsl.graph.serialize import graph_to_json
from mtdsl.render.dot import to_dot
from mtdsl.render.summary import summarize
from mtdsl.spec.load import load_text

PATH = "fuzz.mtl"
SHARDS = 4
EXAMPLES = int(os.environ.get("MTDSL_FUZZ_EXAMPLES", "280"))
SLOW_EXAMPLES = int(os.environ.get("MTDSL_FUZZ_SLOW_EXAMPLES", "5000"))
FLOPS_EVERY = int(os.environ.get("MTDSL_FUZZ_FLOPS_EVERY", "10"))


def compile_all_the_way(text: str) -> None:
    """Parse, check, build the graph on tiny backbones, generate and compile both files, summarise.

    Counting FLOPs builds the whole model on the meta device and costs about a second, so the
    default suite does it for one case in ``FLOPS_EVERY`` (chosen by the text, so reproducibly).
    """
    spec = tiny_backbones(load_text(text, PATH))
    compilation = compile_spec(spec)
    for filename, source in (
        ("model.py", generate_model_source(compilation.graph, PATH)),
        ("train.py", generate_train_source(spec, compilation.graph, "out/train.py")),
    ):
        compile(source, filename, "exec", dont_inherit=True)
    graph_to_json(compilation.graph)
    to_dot(compilation.graph)
    summarize(compilation.graph, with_flops=zlib.crc32(text.encode("utf-8", "surrogatepass")) % FLOPS_EVERY == 0)


def location_problems(error: MtdslError, text: str) -> list[str]:
    """What is wrong with where ``error`` says it happened, if anything."""
    if error.span is None:
        return ["no span"]
    text = text.removeprefix("\ufeff")  # a leading byte-order mark is not part of the spec (editors hide it)
    if error.source is None or error.source.text != text:
        return ["no source, or another text than the spec's"]
    lines = text.split("\n")  # lark counts lines by "\n" alone
    line, column = error.span.line, error.span.column
    if not 1 <= line <= len(lines):
        return [f"line {line} outside 1..{len(lines)}"]
    expected = lines[line - 1]
    problems = []
    shown = error.source.line(line)
    if shown not in (expected, expected.removesuffix("\r")):
        problems.append(f"shows line {line} as {shown!r}, lark's line is {expected!r}")
    if not 1 <= column <= len(expected) + 1:
        problems.append(f"column {column} outside line {line} of length {len(expected)}")
    return problems


def check(text: str) -> None:
    """Fail unless ``text`` compiles all the way or raises a well-located :class:`MtdslError`."""
    try:
        compile_all_the_way(text)
    except MtdslError as error:
        problems = location_problems(error, text)
        if problems:
            raise AssertionError(f"{'; '.join(problems)}\n{error.render()}\n--- spec ---\n{text!r}") from error
    except Exception as error:
        raise AssertionError(f"{type(error).__name__}: {error}\n--- spec ---\n{text!r}") from error


def _fuzz(strategy, shard: int, examples: int) -> None:
    ran = []

    def case(text: str) -> None:
        ran.append(text)
        check(text)

    fuzz = settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                    suppress_health_check=list(HealthCheck))(hypothesis_given(text=strategy)(case))
    seed(shard)(fuzz)()
    assert len(ran) >= examples, f"hypothesis stopped after {len(ran)} of {examples} cases"


@pytest.mark.parametrize("shard", range(SHARDS))
def test_structured_specs_compile_or_fail_with_a_located_error(shard):
    _fuzz(structured_specs(), shard, EXAMPLES)


@pytest.mark.parametrize("shard", range(SHARDS))
def test_mutated_specs_compile_or_fail_with_a_located_error(shard):
    _fuzz(mutated_specs(), 100 + shard, EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["structured", "mutated"])
def test_many_more_fuzzed_specs(family):
    _fuzz(structured_specs() if family == "structured" else mutated_specs(), 1000, SLOW_EXAMPLES)
