from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# Tests judge behaviour, not speed (speed lives in benchmarks/): no per-example deadline, which a
# loaded 2-core machine would turn into failures of correct code.
settings.register_profile("mtdsl", deadline=None)
settings.load_profile("mtdsl")

#: The backbone metadata cache (mtdsl.graph.backbone_cache) of this test session, apart from the user's;
#: subprocesses (the CLI tests) inherit it.
_CACHE = tempfile.mkdtemp(prefix="mtdsl-test-cache-")
os.environ["MTDSL_CACHE_DIR"] = _CACHE


#: Golden generated sources are compared as text, never imported or collected.
collect_ignore = ["golden"]


def pytest_unconfigure(config) -> None:
    shutil.rmtree(_CACHE, ignore_errors=True)

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.mtl"))
SHARED_DATA = ROOT.parent / "shared" / "data"

#: Tiny timm models of the same families, so every spec compiles and runs fast on CPU.
TINY_MODELS = {"resnet": "test_resnet", "efficientnet": "test_efficientnet"}


def tiny_backbones(spec):
    """The spec with each backbone swapped for a tiny model of its family, randomly initialised.

    Tiny models have no offline ImageNet weights, so ``pretrained`` is reset to ``none``.
    """
    from mtdsl.nn.backbone import family

    return spec.with_backbone_models(
        {name: TINY_MODELS.get(family(b.model), "test_resnet") for name, b in spec.model.backbones.items()},
        pretrained="none",
    )


def same_threads() -> dict[str, str]:
    """This process's environment, with its torch thread count for a child process: a run compared number
    for number with one in this process must sum in the same order (test modules may set the count)."""
    import torch

    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}


def requires_shared_data(name: str):
    return pytest.mark.skipif(
        not (SHARED_DATA / name).exists(),
        reason=f"../shared/data/{name} is absent (real datasets live beside the repo)",
    )


TWO_BRANCH_SPEC = """
model demo
input 3x64x64
backbone trunk = timm("test_resnet")
dataset d = synthetic(count = 64, size = 64)
task a: classify(d) { classes = 2 }
task b: classify(d) { classes = 3; branch = trunk.stage2 }
task c: binary(d) { branch = b.stage3; head = mlp([16, 8], pool = avg+max, dropout = 0.1) }
task e: multilabel(d) { classes = [x, y]; tap = trunk.stage3 }
"""


@pytest.fixture
def two_branch():
    from mtdsl.compiler import compile_text

    return compile_text(TWO_BRANCH_SPEC, "demo.mtl")


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """huggingface_hub offline, with an empty cache of its own (returned), and sockets that refuse.

    huggingface_hub reads ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` into its constants when imported and looks at the
    constants on each call, so the fixture sets those.
    """
    import socket

    from huggingface_hub import constants

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(socket, "create_connection", refuse)
    return cache


def put_in_hub_cache(cache: Path, repo: str, files: dict[str, bytes]) -> None:
    """Files as huggingface_hub keeps a download: ``models--ORG--NAME/snapshots/REVISION/FILE`` and ``refs/main``."""
    revision = "0" * 40
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)
