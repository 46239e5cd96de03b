"""Every timm architecture's backbone record, read once by the maintainers and shipped with mtdsl.

:mod:`mtdsl.graph.backbone_cache` keeps what timm said about a model after the
first time it is read, but that first time imports timm and torch: seconds,
where checking a spec takes a fraction of one. This table holds the same
record (:meth:`~mtdsl.graph.backbones.BackboneInfo.to_record`) for every
architecture in timm's registry, read by :func:`write_table` with the timm
version that ``constraints.txt`` pins, so ``mtdsl check`` and ``mtdsl
backbones`` answer at once on a fresh install.

A record is used only when the table was written by this very reader of timm
(:func:`~mtdsl.graph.backbone_cache.reader_version`, a hash of
:mod:`mtdsl.graph.backbones`) for the installed timm version. Otherwise, and
for pretrained tags (``resnet18.a1_in1k``) and hub names, mtdsl reads timm as
it did before the table. ``tests/test_backbone_table.py`` fails when the table
no longer matches its reader; ``make backbone-table`` writes it again (about
half an hour on one core).
"""

from __future__ import annotations

import fnmatch
import functools
import gzip
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from mtdsl.graph.backbone_cache import reader_version, timm_version

TABLE = Path(__file__).with_name("backbones.json.gz")


@functools.lru_cache(maxsize=1)
def _table(path: Path = TABLE) -> dict[str, Any]:
    """The table's header and records, or ``{}`` when it is missing, unreadable or of another reader or timm."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as file:
            table = json.load(file)
    except (OSError, ValueError, EOFError):
        return {}
    if not isinstance(table, dict) or not isinstance(table.get("records"), dict):
        return {}
    return table


def is_current(table: dict[str, Any]) -> bool:
    """The table was read by this module's reader of timm from the installed timm version."""
    return table.get("reader") == reader_version() and table.get("timm") == timm_version() is not None


def record(model_name: str) -> dict[str, Any] | None:
    """The shipped record of an architecture, or ``None`` (not in the table, or the table is not current)."""
    table = _table()
    if not is_current(table):
        return None
    found = table["records"].get(model_name)
    return found if isinstance(found, dict) else None


def matching(pattern: str) -> list[str] | None:
    """The table's architectures matching a shell-style ``pattern``, in timm's order (its natural sort);
    ``None`` when the table cannot answer (not current, or a pattern of pretrained tags or hub names).

    >>> matching("convnext_atto*"), matching("resnet18.a?_in1k")
    (['convnext_atto', 'convnext_atto_ols', 'convnext_atto_rms'], None)
    """
    table = _table()
    if "." in pattern or ":" in pattern or not is_current(table):
        return None
    return sorted(fnmatch.filter(table["records"], pattern), key=_natural_key)


def _natural_key(name: str) -> list[int | str]:
    """timm's ``list_models`` order: ``resnet18`` before ``resnet101``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]


def write_table(path: Path = TABLE, names: list[str] | None = None) -> dict[str, Any]:
    """Read every architecture in timm's registry (or ``names``) and write the table; return it.

    Models timm cannot build at all are left out (a spec naming one gets timm's
    own error), and so is a model whose reading fails in any other way, with
    the failure printed: mtdsl reads such a model live, as before the table.
    A model that builds but cannot be cut is kept, with its refusal. The table
    is written every 50 models, so an interrupted run keeps what it read.
    """
    import timm

    from mtdsl.errors import BackboneError
    from mtdsl.graph.backbones import read_backbone

    names = names if names is not None else timm.list_models()
    table: dict[str, Any] = {"reader": reader_version(), "timm": timm_version(), "records": {}}
    started = time.monotonic()
    for index, name in enumerate(names, 1):
        try:
            table["records"][name] = read_backbone(name).to_record()
        except BackboneError:
            pass
        except Exception as error:  # a bug of the reader: left out of the table, and said
            print(f"{name}: not read ({type(error).__name__}: {error})", file=sys.stderr, flush=True)
        if index % 50 == 0 or index == len(names):
            _write(path, table)
            print(f"{index}/{len(names)} read, {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return table


def _write(path: Path, table: dict[str, Any]) -> None:
    with gzip.GzipFile(path, "wb", mtime=0) as file:  # the same bytes for the same records
        file.write((json.dumps(table, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8"))
    _table.cache_clear()


if __name__ == "__main__":
    written = write_table()
    print(f"{TABLE}: {len(written['records'])} architectures, timm {written['timm']}, reader {written['reader']}")
