"""Where a run's numbers came from: one line in ``provenance.jsonl`` per training session of a run.

Each start and each ``--resume`` appends a record: when, on which machine and
device, by which command, with which seed and world size, the versions of
Python and of every package that shapes the result, and mtdsl's git revision
when it runs from a git checkout (``dirty`` when that checkout has uncommitted
changes). A resumed run thus says how each of its parts was trained.

>>> record = session_record(seed=3, world_size=1, device="cpu", resume=False)
>>> record["seed"], record["world_size"], "torch" in record["packages"]
(3, 1, True)
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import mtdsl
from mtdsl.spec.document import Spec

#: Distributions whose versions can change a run's numbers.
PACKAGES = ("mtdsl", "torch", "torchvision", "timm", "numpy", "pillow", "pycocotools", "pydantic", "lark")


def session_record(*, seed: int, world_size: int, device: str, resume: bool) -> dict:
    """What this process is about to train with."""
    return {
        "event": "resume" if resume else "start",
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "command": [sys.executable, *sys.argv],
        "seed": seed,
        "world_size": world_size,
        "device": device,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "git": git_revision(Path(mtdsl.__file__).resolve().parent),
    }


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision(folder: Path) -> dict | None:
    """``{"commit", "dirty"}`` of the git checkout holding ``folder``; ``None`` outside one or without git."""
    try:
        commit = _git(folder, "rev-parse", "HEAD")
        status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status)}


def _git(folder: Path, *arguments: str) -> str:
    result = subprocess.run(["git", "-C", str(folder), *arguments], capture_output=True, text=True, timeout=10,
                            check=True, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    return result.stdout.strip()


def resolved_spec(spec: Spec) -> dict:
    """The validated spec as data: variables and ``--set`` values filled in, every default explicit."""
    return {
        "name": spec.name,
        "source": spec.source.path,
        "variables": {name: value for name, value in spec.variables.items()},
        "model": spec.model.model_dump(mode="json"),
        "datasets": {name: config.model_dump(mode="json") for name, config in spec.datasets.items()},
        "train": spec.train.model_dump(mode="json"),
    }


def append_session(path: Path, record: dict) -> None:
    """Append ``record`` as one JSON line, flushed to disk before training starts."""
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(record, sort_keys=True) + "\n")
        file.flush()
        os.fsync(file.fileno())
