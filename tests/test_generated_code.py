"""Generated ``model.py`` and ``train.py`` stay valid, inert Python whatever the spec's paths, names and values.

Paths and names from the user reach the generated files only as escaped
docstring text or as literals; numbers (``inf`` included) are written so they
rebuild exactly; node names never become Python names of their own.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import math
import os
import re
import shlex

import pytest
import torch
from conftest import ROOT, SPECS, tiny_backbones
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mtdsl.codegen.literal import GeneratedCodeError, checked_source, docstring_text, literal, wrapped_literal
from mtdsl.codegen.model_source import generate_model_source, variables
from mtdsl.codegen.train_source import (
    BEGIN,
    END,
    TEMPLATE,
    fill_block,
    generate_train_source,
    spec_block,
    template_block,
)
from mtdsl.compiler import compile_file, compile_spec, compile_text
from mtdsl.errors import MtdslError, Source
from mtdsl.spec.load import load_spec
from mtdsl.spec.training import Ramp

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

SMALL_SPEC = """
model small
input 3x32x32
backbone trunk = timm("test_resnet")
dataset shapes = synthetic(count = 8, size = 32)
task a: classify(shapes) { classes = 2 }
task b: binary(shapes) { branch = trunk.stage3 }
"""

HOSTILE_PATHS = (
    "C:\\Users\\new\\x41",
    "\\x",
    "C:\\U",
    'a"""; import os; os.system("x") #',
    '"""\nraise SystemExit\n"""',
    "'''\nraise SystemExit\n'''",
    "x\\",
    'end"',
    "line\rreturn\r\nfeed\fnext\x85sep\u2028para\u2029",
    "\x00nul\x7f\udcff",
    "{}{{}}${x}%s",
)
#: Arbitrary text: quotes, backslashes, line breaks of every kind, control characters, surrogates.
any_text = st.text(st.characters(codec=None), max_size=40) | st.sampled_from(HOSTILE_PATHS)


@functools.lru_cache(maxsize=1)
def _small():
    return compile_text(SMALL_SPEC, "small.mtl")


def _top_level(source: str) -> tuple[str, list[str]]:
    """The module docstring and every other top-level statement, dumped."""
    tree = ast.parse(source)
    return tree.body[0].value.value, [ast.dump(node) for node in tree.body[1:]]


def _run(source: str, filename: str) -> dict:
    namespace = {"__name__": f"generated_{filename.partition('.')[0]}", "__file__": f"/tmp/{filename}"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


# ------------------------------------------------------------------- hostile paths (item 9)


@SETTINGS
@given(path=any_text)
@example(path="C:\\Users\\new\\x41")
@example(path='a"""; import os; os.system("x") #')
@example(path='"""\nraise SystemExit\n"""')
def test_hostile_spec_paths_are_shown_and_never_run(path):
    """model.py shows the spec's path in its docstring, train.py in SPEC_PATH and RUN_COMMANDS: exactly, as data."""
    compilation = _small()
    spec = dataclasses.replace(compilation.spec, source=Source(path, SMALL_SPEC))
    plain = dataclasses.replace(compilation.spec, source=Source("small.mtl", SMALL_SPEC))

    source, baseline = (generate_model_source(compilation.graph, path),
                        generate_model_source(compilation.graph, "small.mtl"))
    docstring, statements = _top_level(source)
    assert path in docstring  # the reader still sees the path, exactly
    assert statements == _top_level(baseline)[1]  # and nothing else changed: no injected code
    assert _run(source, "model.py")["__doc__"] == docstring

    source = generate_train_source(spec, compilation.graph, path + "/train.py")
    baseline = generate_train_source(plain, compilation.graph, "out/train.py")
    namespace = _run(source, "train.py")
    assert namespace["SPEC_PATH"] == path and any(path in shlex.split(command) for command in namespace["RUN_COMMANDS"])
    assert _top_level(source)[0] == _top_level(baseline)[0]
    assert (_statements_but(source, "SPEC_PATH", "RUN_COMMANDS")
            == _statements_but(baseline, "SPEC_PATH", "RUN_COMMANDS"))


def _statements_but(source: str, *names: str) -> list[str]:
    """Every top-level statement but the assignments to ``names``, dumped."""
    return [ast.dump(node) for node in ast.parse(source).body
            if not (isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) in names)]


@SETTINGS
@given(text=any_text)
def test_docstring_text_reads_back_as_the_text(text):
    assert ast.literal_eval('"""' + docstring_text(text) + '"""') == text


# ------------------------------------------------------------------ values (item 10)

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=12,
)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@SETTINGS
@given(value=values)
@example(value=[1e999, -1e999, float("nan"), -0.0, 5e-324, 2**200])
def test_literal_rebuilds_every_value_exactly(value):
    text = literal(value)
    assert _same(eval(checked_source(f"({text})", "v.py")), value)


short_values = st.recursive(
    st.none() | st.booleans() | st.integers(-999, 999) | st.text("abcxyz", max_size=4),
    lambda inner: st.lists(inner, max_size=6) | st.lists(inner, max_size=6).map(tuple)
    | st.dictionaries(st.text("abcxyz", max_size=4), inner, max_size=6),
    max_leaves=30,
)


@SETTINGS
@given(value=values, start=st.integers(0, 60), width=st.integers(10, 120))
def test_wrapped_literal_is_the_same_expression(value, start, width):
    text = wrapped_literal(value, start=start, width=width)
    assert _same(eval(checked_source(f"({text})", "v.py")), value)
    flat = literal(value)
    assert (text == flat) == (start + len(flat) <= width or "\n" not in text)


@SETTINGS
@given(value=short_values, start=st.integers(0, 20), width=st.integers(90, 120))
def test_wrapped_literal_keeps_to_the_width_when_its_tokens_are_short(value, start, width):
    lines = wrapped_literal(value, start=start, width=width).split("\n")
    assert start + len(lines[0]) <= width
    assert all(len(line) <= width for line in lines[1:])


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_the_spec_block_of_every_spec_keeps_to_readable_lines(path):
    compilation = compile_spec(tiny_backbones(load_spec(path)))
    block = spec_block(compilation.spec, compilation.graph, "out/train.py")
    # Past 120 columns only a line that holds a long string (a path, say), which no line break can shorten.
    long_lines = [line for line in block.split("\n")
                  if len(line) > 120 and not line.startswith("#") and not re.search(r"'[^']{60,}'", line)]
    assert not long_lines


def test_literal_refuses_values_it_cannot_write():
    with pytest.raises(GeneratedCodeError):
        literal(object())
    with pytest.raises(GeneratedCodeError):
        literal({1, 2})


def test_checked_source_refuses_broken_or_undefined_names():
    with pytest.raises(GeneratedCodeError, match="inf"):
        checked_source("LR = inf\n", "train.py")
    with pytest.raises(GeneratedCodeError, match="nan"):
        checked_source("def f():\n    return nan\n", "train.py")
    with pytest.raises(GeneratedCodeError, match="compile"):
        checked_source('"""a"""b"""\n', "train.py")
    assert checked_source("import math\nX = math.inf\ndef f(y):\n    return X, y, len\n", "ok.py")


def test_the_block_between_the_markers_is_the_only_part_written():
    template = f"A = 1\n{BEGIN}\nOLD = 1\n{END}\nB = 2"
    assert fill_block(template, "NEW = 2") == f"A = 1\n{BEGIN}\nNEW = 2\n{END}\nB = 2"
    for broken in ("A = 1", f"{BEGIN}\n{BEGIN}\n{END}", f"{END}\n{BEGIN}"):
        with pytest.raises(GeneratedCodeError, match="needs one"):
            fill_block(broken, "X = 1")


def test_the_template_is_itself_the_quickstart_loop_and_imports_as_it_stands(monkeypatch):
    """The shipped template must be valid Python (ruff reads it); its block is the quickstart's."""
    monkeypatch.chdir(ROOT)
    compilation = compile_file("specs/quickstart.mtl")
    block = spec_block(compilation.spec, compilation.graph)
    if os.environ.get("MTDSL_REGENERATE_GOLDEN") == "1":
        TEMPLATE.write_text(fill_block(TEMPLATE.read_text(encoding="utf-8"), block), encoding="utf-8")
    assert template_block(TEMPLATE.read_text(encoding="utf-8")) == block, (
        "the template's block is not the quickstart's any more; rerun with MTDSL_REGENERATE_GOLDEN=1")
    loop = _run(TEMPLATE.read_text(encoding="utf-8"), "train_loop.py")
    assert list(loop["TASKS"]) == list(compilation.spec.model.tasks) and callable(loop["train"])


def test_a_train_py_that_would_not_import_is_an_internal_error_not_a_file(tmp_path, monkeypatch):
    from mtdsl.codegen import train_source

    for broken in (f"{BEGIN}\n{END}\nLR = inf\n", f"{BEGIN}\n{END}\nif True\n"):
        template = tmp_path / "train_loop.py"
        template.write_text(broken, encoding="utf-8")
        monkeypatch.setattr(train_source, "TEMPLATE", template)
        with pytest.raises(GeneratedCodeError):
            generate_train_source(_small().spec, _small().graph)


def test_non_finite_numbers_are_written_so_train_py_imports():
    compilation = _small()
    train = compilation.spec.train
    train = train.model_copy(update={
        "grad_clip": float("-inf"),
        "tasks": {name: t.model_copy(update={"weight": 1e999}) for name, t in train.tasks.items()},
    })
    spec = dataclasses.replace(compilation.spec, train=train)
    namespace = _run(generate_train_source(spec, compilation.graph), "train.py")
    assert namespace["GRAD_CLIP"] == -math.inf
    assert namespace["LOSS_WEIGHTS"] == {"a": math.inf, "b": math.inf}


def test_a_config_that_its_own_schema_refuses_is_an_internal_error_not_code():
    compilation = _small()
    train = compilation.spec.train  # the spec layer refuses inf; a config made around it must not reach train.py
    train = train.model_copy(update={"optimizer": train.optimizer.model_copy(update={"lr": float("inf")})})
    with pytest.raises(GeneratedCodeError, match="does not rebuild"):
        generate_train_source(dataclasses.replace(compilation.spec, train=train), compilation.graph)


def _registered_configs():
    """One instance of every registered config kind, its text fields hostile where it has any."""
    from mtdsl.nn.heads import HEAD_CONFIGS
    from mtdsl.nn.losses import LOSS_CONFIGS
    from mtdsl.nn.necks import NECK_CONFIGS
    from mtdsl.spec.data import DATASETS
    from mtdsl.spec.model import BACKBONES
    from mtdsl.spec.training import OPTIMIZERS, SAMPLERS, SCHEDULES, WEIGHTINGS

    hostile = 'C:\\Users\\new\\x41 """ \' \n'
    fillers = {"hidden": [16, 8], "every": 2, "ratios": {"a": 0.25, "b'\"": Ramp(start=0.1, end=1.0)}}
    configs = []
    for registry in (HEAD_CONFIGS, NECK_CONFIGS, LOSS_CONFIGS, BACKBONES, OPTIMIZERS, SAMPLERS, SCHEDULES,
                     WEIGHTINGS, DATASETS):
        for kind in registry.kinds():
            config = registry.get(kind)
            required = {name: fillers.get(name, hostile) for name, field in config.model_fields.items()
                        if field.is_required()}
            configs.append(pytest.param(config, required, id=f"{registry.what}-{kind}"))
    return configs


@pytest.mark.parametrize(("config", "fields"), _registered_configs())
def test_every_registered_config_is_written_so_it_rebuilds_equal(config, fields):
    instance = config.model_validate(fields)
    classes: set[type] = set()
    text = literal(instance, classes)
    imports = "".join(f"from {kind.__module__} import {kind.__name__}\n" for kind in classes)
    namespace: dict = {}
    exec(checked_source(f"{imports}VALUE = {text}\n", "v.py"), namespace)
    assert namespace["VALUE"] == instance


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_constant_of_train_py_rebuilds_the_spec_value(path):
    compilation = compile_spec(tiny_backbones(load_spec(path)))
    spec = compilation.spec
    namespace = _run(generate_train_source(spec, compilation.graph), "train.py")
    assert namespace["DATASETS"] == dict(spec.datasets)
    for constant, value in (("SAMPLING", spec.train.sampling), ("WEIGHTING", spec.train.weighting),
                            ("OPTIMIZER", spec.train.optimizer), ("SCHEDULE", spec.train.schedule),
                            ("GRAD_CLIP", spec.train.grad_clip), ("WARMUP_EPOCHS", spec.train.warmup),
                            ("SEED", spec.train.seed), ("SPEC_NAME", spec.name)):
        assert namespace[constant] == value, constant
    assert namespace["LOSS_WEIGHTS"] == {name: t.weight for name, t in spec.train.tasks.items()}


# --------------------------------------------------------- names in the generated model (item 3)

#: Names that ``model.py`` binds or uses itself, and builtins. nn.Module attributes
#: (``train``, ``eval``, ``to``) are the spec layer's to reject and are not listed here.
TRICKY_NAMES = (
    "x", "self", "tasks", "outputs", "wanted", "requested", "built", "torch", "nn", "copy", "TASKS",
    "INPUT_SIZE", "Model", "resolve_tasks", "timm_segments", "ClassificationHead", "set", "print", "Any",
    "annotations", "trunk_stage3", "input", "x_2",
)
#: Python keywords: the spec layer may reject them; if it accepts them, model.py must work.
KEYWORD_NAMES = ("class", "lambda", "None", "def", "match", "_")


def _named_spec(backbone: str, dataset: str, tasks: list[str]) -> str:
    """One spec in which every name is used: tasks alternately branch at stage2, stage3 and tap stage3."""
    where = (f"branch = {backbone}.stage2", f"branch = {backbone}.stage3", f"tap = {backbone}.stage3")
    lines = [f"model {tasks[0]}", "input 3x32x32", f'backbone {backbone} = timm("test_resnet")',
             f"dataset {dataset} = synthetic(count = 8, size = 32)"]
    lines += [f"task {task}: classify({dataset}) {{ classes = 2; {where[i % 3]} }}" for i, task in enumerate(tasks)]
    return "\n".join(lines) + "\n"


NAMED_SPECS = {
    "names": _named_spec(TRICKY_NAMES[0], TRICKY_NAMES[1], list(TRICKY_NAMES[2:])),
    "names_rotated": _named_spec(TRICKY_NAMES[8], TRICKY_NAMES[7], list(TRICKY_NAMES[:7] + TRICKY_NAMES[9:])),
}

COLLIDING_SPECS = {
    # `c/zb.stage4` (task c's copy of zb.stage4) and `c__zb.stage4` would both be `c__zb_stage4`;
    # the graph walk computes c's copy between c__zb.stage4 and the zz head that reads it.
    "branch_vs_backbone": """
model m
input 3x32x32
backbone zb = timm("test_resnet")
backbone c__zb = timm("test_resnet")
dataset d = synthetic(count = 8, size = 32)
task c: classify(d) { classes = 2; branch = zb.stage3 }
task zz: classify(d) { classes = 2; backbone = c__zb }
task e: classify(d) { classes = 2; backbone = zb }
""",
    # a neck named like the segment variable `trunk_stage3`, computed before zz's head reads trunk.stage3.
    "neck_vs_segment": """
model m
input 3x64x64
backbone trunk = timm("test_resnet")
neck trunk_stage3 = fpn(trunk, channels = 8, min_level = 3, max_level = 5)
dataset d = synthetic(count = 8, size = 64)
task x: segment(d) { classes = [background, circle, square, triangle]; tap = trunk_stage3 }
task zz: classify(d) { classes = 2; tap = trunk.stage3 }
""",
}


def _assert_generated_model_matches(compilation, tmp_name: str) -> None:
    source = generate_model_source(compilation.graph, "names.mtl")
    generated = _run(source, f"{tmp_name}.py")["Model"](load_pretrained=False).eval()
    compiled = compilation.model().eval()
    generated.load_state_dict(compiled.state_dict(), strict=True)
    size = compilation.spec.model.input.size
    x = torch.randn(2, *size)
    tasks = list(compilation.spec.model.tasks)
    with torch.no_grad():
        for wanted in (None, tasks[:1], tasks[-1:]):
            expected, actual = compiled(x, tasks=wanted), generated(x, tasks=wanted)
            assert list(actual) == list(expected)
            for task in expected:
                torch.testing.assert_close(actual[task], expected[task], rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMED_SPECS)
def test_tricky_names_give_a_model_py_equal_to_the_model(name):
    _assert_generated_model_matches(compile_text(NAMED_SPECS[name], f"{name}.mtl"), name)


def test_python_keywords_as_names_are_refused_where_they_are_declared():
    with pytest.raises(MtdslError) as caught:  # model.py could not hold them as identifiers
        compile_text(_named_spec(KEYWORD_NAMES[0], KEYWORD_NAMES[1], list(KEYWORD_NAMES[2:])), "keywords.mtl")
    assert caught.value.span is not None and "keyword" in caught.value.render()


@pytest.mark.parametrize("name", COLLIDING_SPECS)
def test_node_variables_never_collide(name):
    compilation = compile_text(COLLIDING_SPECS[name], f"{name}.mtl")
    _assert_generated_model_matches(compilation, name)


@SETTINGS
@given(nodes=st.lists(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}([./][A-Za-z_][A-Za-z0-9_]{0,6}){0,2}",
                                    fullmatch=True), unique=True, max_size=12),
       taken=st.sets(st.sampled_from(["x", "self", "outputs", "a_b", "a__b"]) | st.from_regex(r"[a-z_]{1,4}",
                                                                                         fullmatch=True)))
def test_node_variables_are_distinct_identifiers_outside_taken(nodes, taken):
    names = variables(nodes, taken)
    assert len(set(names.values())) == len(nodes)
    assert all(name.isidentifier() and name not in taken for name in names.values())
    assert not any(name in __builtins__ if isinstance(__builtins__, dict) else hasattr(__builtins__, name)
                   for name in names.values())


def test_a_neck_named_like_the_input_node_is_a_located_error():
    text = (
        'model m\ninput 3x64x64\nbackbone trunk = timm("test_resnet")\nneck input = fpn(trunk, max_level = 5)\n'
        "dataset d = synthetic()\ntask s: segment(d) { classes = 3 }\n"
    )
    with pytest.raises(MtdslError) as caught:
        compile_text(text, "input_neck.mtl")
    assert caught.value.span is not None and caught.value.span.line == 4
    assert "rename it" in caught.value.render()
