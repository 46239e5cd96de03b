"""Hypothesis strategies that write ``.mtl`` spec texts, for fuzzing the whole compile path.

Two families:

* :func:`structured_specs` builds specs statement by statement from the grammar
  (``frontend/grammar.lark``), with keys taken from the real config schemas and
  values that are mostly of the right sort but now and then wild: huge, negative
  or non-finite numbers, hostile strings, names that are keywords, lists, calls,
  sums, ratios and ``${…}`` variables.
* :func:`mutated_specs` takes a shipped spec or an invalid-corpus spec and
  inserts, deletes or replaces text, odd line breaks (``\\f``, ``\\x85``,
  ``\\u2028``, lone ``\\r``), a BOM and deep nesting included.
"""

from __future__ import annotations

from conftest import ROOT
from hypothesis import strategies as st

from mtdsl.nn.heads import HEAD_CONFIGS
from mtdsl.nn.losses import LOSS_CONFIGS
from mtdsl.nn.necks import NECK_CONFIGS
from mtdsl.spec.data import DATASETS
from mtdsl.spec.model import TASK_KINDS
from mtdsl.spec.training import OPTIMIZERS, SAMPLERS, SCHEDULES, WEIGHTINGS, TrainSpec

SOURCES = {
    path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "specs").glob("*.mtl")) + sorted((ROOT / "tests" / "invalid").glob("*.mtl"))
}

KEYWORDS = ("model", "let", "input", "backbone", "neck", "dataset", "task", "train", "phase")
ODD_NAMES = ("x", "self", "outputs", "torch", "nn", "TASKS", "class", "None", "True", "inf", "nan", "_", "a_b", "heads",
             "shared", "backbones", "train", "eval", "forward", *KEYWORDS)
TINY_MODELS = ("test_resnet", "test_efficientnet")
HOSTILE_STRINGS = ('C:\\Users\\new\\x41', 'a"""; import os #', "'''", "\\", "${x}", "", " ", "é", "\t", "\\n")
LINE_BREAKS = ("\n", "\r\n", "\r", "\f", "\x85", "\u2028", "\u2029", "\v", "\x1c")


def _fields(registry) -> dict[str, tuple[str, ...]]:
    return {kind: tuple(f for f in registry.get(kind).model_fields if f != "kind") for kind in registry.kinds()}


HEAD_FIELDS = _fields(HEAD_CONFIGS)
NECK_FIELDS = _fields(NECK_CONFIGS)
LOSS_FIELDS = _fields(LOSS_CONFIGS)
TRAIN_CALLS = {"optimizer": _fields(OPTIMIZERS), "schedule": _fields(SCHEDULES), "sampling": _fields(SAMPLERS),
               "weighting": _fields(WEIGHTINGS)}
TRAIN_KEYS = tuple(f for f in TrainSpec.model_fields if f not in ("phases", "tasks"))
TASK_KEYS = ("classes", "head", "backbone", "branch", "tap", "crops", "loss", "weight", "batch_size", "positive",
             "label", "balanced", "target")

names = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True) | st.sampled_from(ODD_NAMES)

# ------------------------------------------------------------------------ values


def _number_text(value: float | int) -> str:
    text = repr(value)
    return text if "inf" not in text and "nan" not in text else "1e999" if value == value else "0"


numbers = st.one_of(
    st.integers(0, 8).map(str),
    st.sampled_from(["0.5", "0.1", "1e-3", "2", "16", "64", "-1", "0", "1e999", "-1e999", "1e9", "18446744073709551616",
                     "0.0", ".5", "5.", "1e-400", "123456789012345678901234567890"]),
    st.integers().map(str),
    st.floats(allow_nan=False).map(_number_text),
)
strings = (st.sampled_from(HOSTILE_STRINGS) | st.text(max_size=8)).map(
    lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
)


def _list(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _call(name: str, arguments: list[str]) -> str:
    return f"{name}({', '.join(arguments)})"


atoms = st.one_of(
    numbers, strings, names,
    st.sampled_from(["3x64x64", "1x1", "0x0x0", "0.7/0.15/0.15", "1/0", "avg+max", "trunk.stage3", "${x}", "${data}"]),
    st.tuples(names, names).map(".".join),
)
values = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(_list),
        st.tuples(names, st.lists(inner | st.tuples(names, inner).map(" = ".join), max_size=3)).map(
            lambda t: _call(*t)),
        st.lists(atoms, min_size=2, max_size=3).map(" + ".join),
    ),
    max_leaves=8,
)


#: Plausible values of schema fields by name; other fields get small numbers.
GOOD = {
    "pool": ["avg", "max", "avg+max"], "dropout": ["0", "0.1"], "hidden": ["[16]", "[8, 4]"], "depth": ["1", "2"],
    "separable": ["true", "false"], "anchor_scale": ["2", "4"], "scales": ["1", "2"], "levels": ["1", "2"],
    "merge": ["sum", "concat"], "channels": ["8", "16"], "repeats": ["1"], "min_level": ["3"], "max_level": ["5"],
    "extra": ["conv", "pool"], "weighting": ["fastattn", "sum"], "lr": ["0.01", "1e-3", "1e999"], "momentum": ["0.9"],
    "weight_decay": ["0", "1e-4"], "nesterov": ["true"], "betas": ["[0.9, 0.999]"], "min_lr": ["0"],
    "every": ["2"], "gamma": ["0.5", "2"], "temperature": ["2"], "floor": ["0.1"], "base_lr": ["1e-3"],
    "max_lr": ["0.01"], "cycle_epochs": ["2"], "label_smoothing": ["0.1"], "dice": ["0.5"], "pos_weight": ["2"],
    "alpha": ["0.25"], "box_weight": ["50"], "delta": ["0.1"], "count": ["8", "16"], "size": ["32", "64"],
    "seed": ["0", "7"], "split": ["[0.8, 0.1, 0.1]", "0.7/0.15/0.15"], "epochs": ["1", "2"], "batch_size": ["4", "8"],
    "warmup": ["0", "1"], "grad_clip": ["1.0", "1e999"], "precision": ["auto", "fp32", "bf16"], "workers": ["0", "2"],
    "channels_last": ["true", "false"], "compile": ["false"], "on_corrupt": ["error", "skip"],
    "pretrained": ["none"], "drop_rate": ["0.1", "0"], "drop_path_rate": ["0.1"],
    "weight": ["1", "0.5", "2", "1e999"], "label": ['"C:\\\\new\\\\x41"', '"a\\"\\"\\"b"'],
    "positive": ['"yes\\"\\"\\"; import os #"', "'it\\'s'"],
}


def _value(draw, field: str) -> str:
    """Mostly a plausible value for ``field``, sometimes any value the grammar allows."""
    if _now_and_then(draw):
        return draw(values)
    return draw(st.sampled_from(GOOD.get(field, ["0", "1", "0.5", "2"])))


def _arguments(draw, fields: tuple[str, ...]) -> list[str]:
    count = draw(st.sampled_from([0, 0, 1, 1, 2, 3]))
    chosen = draw(st.lists(st.sampled_from(fields), unique=True, min_size=min(count, len(fields)),
                           max_size=min(count, len(fields)))) if fields else []
    return [f"{key} = {_value(draw, key)}" for key in chosen]


plain_names = st.sampled_from(["a", "b", "trunk", "shapes", "other", "p", "q", "main", "aux", "d2"])


def _now_and_then(draw) -> bool:
    # Hypothesis draws boundary values far more often than others, so "1 in 12" is a middle value.
    return draw(st.integers(0, 11)) == 7


def _rarely(draw, good: str, wild: st.SearchStrategy[str]) -> str:
    return draw(wild) if _now_and_then(draw) else good


@st.composite
def structured_specs(draw) -> str:
    """A spec built from the grammar: mostly well-formed, with schema keys and sometimes wild values."""
    used: set[str] = set()

    def fresh() -> str:
        name = draw((names if _now_and_then(draw) else plain_names).filter(lambda n: n not in used))
        used.add(name)
        return name

    lines = [f"model {_rarely(draw, 'm', names)}"]
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        lines.append(f"let {draw(names)} = {draw(values)}")
    dimensions = st.integers(0, 10**6).map(str)
    size = _rarely(draw, draw(st.sampled_from(["32", "64"])), dimensions)
    lines.append(f"input {_rarely(draw, '3', dimensions)}x{size}x{size}")

    backbones = [fresh() for _ in range(draw(st.sampled_from([1, 1, 1, 2])))]
    for backbone in backbones:
        model = _rarely(draw, _quoted(draw(st.sampled_from(TINY_MODELS))), values)
        extra = _arguments(draw, ("pretrained", "drop_rate", "drop_path_rate"))
        lines.append(f"backbone {backbone} = {_call('timm', [_quoted(model)] + extra)}")

    necks = []
    for _ in range(draw(st.sampled_from([0, 1]))):
        neck, kind = fresh(), draw(st.sampled_from(sorted(NECK_FIELDS)))
        arguments = [_rarely(draw, draw(st.sampled_from(backbones)), names), "max_level = 5"]
        arguments += _arguments(draw, tuple(f for f in NECK_FIELDS[kind] if f not in ("backbone", "max_level")))
        lines.append(f"neck {neck} = {_call(kind, arguments)}")
        necks.append(neck)

    datasets = [fresh() for _ in range(draw(st.sampled_from([1, 1, 2])))]
    for dataset in datasets:
        kind = draw(st.sampled_from(sorted(DATASETS.kinds()))) if _now_and_then(draw) else "synthetic"
        fields = tuple(f for f in DATASETS.get(kind).model_fields if f not in ("kind", "name"))
        lines.append(f"dataset {dataset} = {_call(kind, _arguments(draw, fields))}")

    tasks = [fresh() for _ in range(draw(st.integers(1, 3)))]
    for task in tasks:
        kind = draw(st.sampled_from(["classify", "binary", "multilabel"] * 2 + sorted(TASK_KINDS)))
        source = _rarely(draw, draw(st.sampled_from(datasets)), values | names)
        entries = []
        if kind in ("classify", "multilabel", "detect", "segment") and draw(st.integers(0, 5)):
            entries.append(f"classes = {_task_value(draw, 'classes', backbones, necks, tasks)}")
        for key in draw(st.lists(st.sampled_from(TASK_KEYS), unique=True, max_size=2)) if _now_and_then(draw) else ():
            entries.append(f"{key} = {_task_value(draw, key, backbones, necks, tasks)}")
        block = " { " + draw(st.sampled_from(["; ", "\n", ", "])).join(entries) + " }" if entries else ""
        lines.append(f"task {task}: {kind}({source}){block}")

    if draw(st.booleans()):
        entries = []
        for key in draw(st.lists(st.sampled_from(TRAIN_KEYS), unique=True, max_size=4)):
            if key in TRAIN_CALLS:
                kind = draw(st.sampled_from(sorted(TRAIN_CALLS[key])))
                entries.append(
                    f"{key} = {_rarely(draw, _call(kind, _arguments(draw, TRAIN_CALLS[key][kind])), values)}"
                )
            else:
                entries.append(f"{key} = {_value(draw, key)}")
        for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
            freeze = _list(draw(st.lists(st.sampled_from(["shared", "heads", "backbones", *backbones, *tasks]),
                                         max_size=2)))
            entries.append(f"phase {fresh()} {{ epochs = {_value(draw, 'epochs')}; freeze = {freeze} }}")
        lines.append("train {\n    " + "\n    ".join(entries) + "\n}")

    order = draw(st.permutations(range(len(lines)))) if _now_and_then(draw) else range(len(lines))
    return draw(st.sampled_from(["\n", "\n", "\r\n"])).join(lines[i] for i in order) + "\n"


def _quoted(model: str) -> str:
    return model if model[:1] in "\"'[(" or not model.replace("_", "").isalnum() else f'"{model}"'


def _task_value(draw, key: str, backbones: list[str], necks: list[str], tasks: list[str]) -> str:
    if _now_and_then(draw):
        return draw(values)
    if key == "classes":
        return draw(st.sampled_from(["2", "3", "[a, b]", "[background, circle, square]", "[c1, c2, c3, c4]",
                                     '["C:\\\\new\\\\x41", "a\\"\\"\\"b", "\'\'\'", "\\n"]']))
    if key == "head":
        kind = draw(st.sampled_from(sorted(HEAD_FIELDS)))
        return _call(kind, _arguments(draw, HEAD_FIELDS[kind]))
    if key == "loss":
        kind = draw(st.sampled_from(sorted(LOSS_FIELDS)))
        return _call(kind, _arguments(draw, LOSS_FIELDS[kind]))
    if key in ("branch", "tap"):
        stage = draw(st.sampled_from(["stem", "stage1", "stage2", "stage3", "stage4", "stage9", "blocks.1", "blocks"]))
        return draw(st.sampled_from([f"{b}.{stage}" for b in backbones] + necks + [f"{t}.{stage}" for t in tasks]))
    if key == "backbone":
        return draw(st.sampled_from(backbones + necks))
    return _value(draw, key)


# ------------------------------------------------------------------- mutations

TOKENS = (
    "+", "=", "(", ")", "{", "}", "[", "]", ",", ";", ".", '"', "'", "${", "${}", "${1a}", "${a", "${x}", "x", "0",
    "-1", "1e9", "1e999", "-1e999", "3x0x0", "0.5/0.5", "nan", "inf", "true", "yes", "avg+max", "trunk.stage9", "task",
    "phase", "neck", "backbone", "dataset", "train", "model", "let x = 1", "\n", "#", "α", "\ufeff", "\\", '"""',
    "\t", " ", "phase p { epochs = 1 }", "classes = 100000000000000000000", "class", "self", "__init__",
    *LINE_BREAKS,
)


@st.composite
def deep_nesting(draw) -> str:
    depth = draw(st.sampled_from([3, 50, 300, 1000, 3000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ("f(", ")")]))
    return opener * depth + "1" + closer * draw(st.sampled_from([depth, max(depth - 1, 0)]))


@st.composite
def mutated_specs(draw) -> str:
    """A shipped or corpus spec with a few random edits."""
    text = SOURCES[draw(st.sampled_from(sorted(SOURCES)))]
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        token = draw(st.sampled_from(TOKENS) | deep_nesting() | values | st.text(max_size=3))
        edit = draw(st.sampled_from(["insert", "delete", "replace", "swap_break"]))
        if edit == "insert":
            text = text[:at] + token + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)):]
        elif edit == "replace":
            text = text[:at] + token + text[at + draw(st.integers(1, 4)):]
        else:
            found = text.find("\n", at)
            if found >= 0:
                text = text[:found] + draw(st.sampled_from(LINE_BREAKS)) + text[found + 1:]
    if draw(st.integers(0, 19)) == 0:
        text = "\ufeff" + text
    return text
