"""Mangled specs fail with an mtdsl error that renders, never with a Python traceback.

Each case takes a shipped or corpus spec and applies a few seeded edits (insert
a token, cut a run of characters, overwrite a few), then compiles the result.
Whatever the edit, compiling must either succeed or raise an
:class:`~mtdsl.errors.MtdslError` whose message renders with its position.
"""

from __future__ import annotations

import random

import pytest

from mtdsl.compiler import compile_text
from mtdsl.errors import MtdslError

from conftest import ROOT

SOURCES = sorted((ROOT / "specs").glob("*.mtl")) + sorted((ROOT / "tests" / "invalid").glob("*.mtl"))
TOKENS = (
    "+", "=", "(", ")", "{", "}", "[", "]", ",", ";", ".", '"', "${", "x", "0", "-1", "1e9", "3x0x0", "0.5/0.5",
    "nan", "inf", "true", "avg+max", "trunk.stage9", "task", "phase", "neck", "backbone", "dataset", "\n", "#", "α",
)
CASES = 400


def mangled(seed: int) -> str:
    rng = random.Random(seed)
    text = rng.choice(SOURCES).read_text(encoding="utf-8")
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(text) + 1)
        roll = rng.random()
        if roll < 0.4:
            text = text[:at] + rng.choice(TOKENS) + text[at:]
        elif roll < 0.7:
            text = text[:at] + text[at + rng.randint(1, 12):]
        else:
            text = text[:at] + rng.choice(TOKENS) + text[at + rng.randint(1, 4):]
    return text


@pytest.mark.parametrize("block", range(8))
def test_mangled_specs_fail_cleanly_or_compile(block):
    for seed in range(block * CASES // 8, (block + 1) * CASES // 8):
        text = mangled(seed)
        try:
            compile_text(text, "mangled.mtl")
        except MtdslError as error:
            assert error.render().startswith("mangled.mtl"), (seed, error.render())
        except Exception as error:  # noqa: BLE001 - the point is that nothing else escapes
            pytest.fail(f"seed {seed}: {type(error).__name__}: {error}\n--- spec ---\n{text}")
