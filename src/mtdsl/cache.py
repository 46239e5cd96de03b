"""Where mtdsl keeps what it can compute again but would rather not: ``$MTDSL_CACHE_DIR``.

Two things live there, each keyed so that a stale entry is never used: the
backbone metadata read from timm (:mod:`mtdsl.graph.backbone_cache`, per timm
version) and lark's analysed grammar (:mod:`mtdsl.frontend.grammar_cache`,
keyed by a hash of the grammar, lark's version and the parser's options). Both
are JSON: nothing read from the folder is unpickled, so a file planted there
runs no code (lark's own ``cache=`` would unpickle it). Deleting the folder
costs only time. The folder is ``$MTDSL_CACHE_DIR``, else
``$XDG_CACHE_HOME/mtdsl``, else ``~/.cache/mtdsl``; ``MTDSL_CACHE_DIR=""``
turns caching off.

>>> from unittest import mock
>>> with mock.patch.dict(os.environ, {"MTDSL_CACHE_DIR": ""}):
...     cache_folder() is None
True
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from pathlib import Path


def cache_folder() -> Path | None:
    """The cache folder (not created here), or ``None`` when caching is off."""
    configured = os.environ.get("MTDSL_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mtdsl"


@functools.lru_cache(maxsize=8)
def installed_version(package: str) -> str | None:
    """``package``'s version from its ``version.py``, without importing it (timm and torch keep one there).

    ``None`` when the package or the file is missing. Importing torch to ask would cost seconds; read
    once per process, as every backbone record looked up asks.
    """
    try:
        found = importlib.util.find_spec(package)
        if found is None or found.origin is None:
            return None
        text = (Path(found.origin).parent / "version.py").read_text(encoding="utf-8")
    except (OSError, ImportError, ValueError):
        return None
    match = re.search(r"""__version__\s*=\s*['"]([^'"]+)['"]""", text)
    return match.group(1) if match else None
