"""A file of the backbone metadata read from timm, so that checking a spec need not import torch.

Reading a backbone's segments takes timm, and importing timm imports torch:
seconds, where parsing and checking a spec take a fraction of one. What timm
says about a model depends only on timm's version and on how mtdsl reads it,
so each model read is kept in ``backbones-<reader>-timm-<version>.json`` in
mtdsl's cache folder (:func:`mtdsl.cache.cache_folder`, ``~/.cache/mtdsl``
unless ``$MTDSL_CACHE_DIR`` says otherwise). timm's version is read from its
installed ``version.py``, without importing it; ``<reader>`` is a hash of
:mod:`mtdsl.graph.backbones`, the module that cuts models into segments. A
new timm, or any change to that module, starts a new file.

The cache only ever saves time: an unreadable or corrupt file reads as empty,
and a file that cannot be written is left alone. A model not in the file is
looked up in the table shipped with mtdsl (:mod:`mtdsl.graph.backbone_table`),
which holds every architecture of the timm version mtdsl pins.

>>> import os, tempfile
>>> from unittest import mock
>>> with mock.patch.dict(os.environ, {"MTDSL_CACHE_DIR": tempfile.mkdtemp()}):
...     write("demo_net", {"model": "demo_net", "family": "test", "segments": []})
...     read("demo_net")["family"], cache_file().name == f"backbones-{reader_version()}-timm-{timm_version()}.json"
('test', True)
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from mtdsl.cache import cache_folder, installed_version
from mtdsl.files import write_atomic


def timm_version() -> str | None:
    """Installed timm's version from its ``version.py``, without importing it; ``None`` if it cannot be read."""
    return installed_version("timm")


def cache_file() -> Path | None:
    """The file for this timm version, or ``None`` when there is no folder or no readable timm version."""
    base, version = cache_folder(), timm_version()
    if base is None or version is None:
        return None
    return base / f"backbones-{reader_version()}-timm-{version}.json"


@functools.lru_cache(maxsize=1)
def reader_version() -> str:
    """A short hash of :mod:`mtdsl.graph.backbones` (read as text, not imported), which writes the records."""
    source = Path(__file__).with_name("backbones.py").read_bytes()
    return hashlib.sha256(source).hexdigest()[:12]


def _records(path: Path) -> dict[str, Any]:
    """The file's records (read once per version of the file, as several checks ask in turn)."""
    try:
        status = path.stat()
    except OSError:
        return {}
    return dict(_parsed(path, status.st_mtime_ns, status.st_size))


@functools.lru_cache(maxsize=8)
def _parsed(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read(model_name: str) -> dict[str, Any] | None:
    """The record kept for ``model_name`` in the cache file, else shipped with mtdsl, else ``None``.

    With caching off (``MTDSL_CACHE_DIR=""``) both are passed over and every model is read from timm.
    """
    if cache_file() is None:
        return None
    return kept(model_name) or _shipped(model_name)


def kept(model_name: str) -> dict[str, Any] | None:
    """The record kept for ``model_name`` in the cache file, or ``None``."""
    path = cache_file()
    if path is None:
        return None
    record = _records(path).get(model_name)
    return record if isinstance(record, dict) else None


def _shipped(model_name: str) -> dict[str, Any] | None:
    from mtdsl.graph import backbone_table  # it reads this module's versions

    return backbone_table.record(model_name)


def write(model_name: str, record: dict[str, Any]) -> None:
    """Keep ``record`` for ``model_name`` beside the others; a folder that cannot be written is no error."""
    path = cache_file()
    if path is None:
        return
    records = _records(path)
    records[model_name] = record
    try:
        write_atomic(path, json.dumps(records, sort_keys=True) + "\n")
    except OSError:
        pass
