"""``mtdsl check``: a spec parsed, validated, resolved and its sharing graph built, without training anything.

It runs the stages ``mtdsl compile`` runs before it builds modules
(:func:`~mtdsl.spec.load.load_spec`, then :func:`~mtdsl.graph.build.build_graph`)
and stops there, so it imports neither torch nor timm unless a spec needs
timm's metadata for a backbone it has not read before:

* the spec's own rules (syntax, names, values, references between
  declarations, classes, heads and losses that fit their tasks, sampling,
  phases' epochs) never need it;
* the rules on backbones (:mod:`mtdsl.graph.checks`: a timm model
  that exists and can be cut, a neck's strides, ``branch``/``tap``
  segments, freeze targets such as ``trunk.stage3``) and the graph itself
  (channels, strides, parameter counts of segments) read each backbone's
  metadata from timm once, on the meta device, and keep it in a cache file
  (:mod:`mtdsl.graph.backbone_cache`); later checks of any spec with that
  model read the file. A misspelt model name imports timm to suggest names.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.mtl"
>>> _ = path.write_text('model demo\\nbackbone trunk = timm("test_resnet")\\n'
...                     'dataset d = synthetic()\\ntask a: classify(d) { classes = 3; branch = trunk.stage9 }')
>>> problem = check_file(path)
>>> problem["stage"], problem["line"], problem["col"]
('backbone error', 4, 45)
"""

from __future__ import annotations

from pathlib import Path

from mtdsl.errors import MtdslError
from mtdsl.graph.build import build_graph
from mtdsl.spec.load import load_spec


def check_file(path: str | Path, overrides: dict[str, str] | None = None) -> dict | None:
    """The first error in the spec at ``path`` as :func:`error_record` data, or ``None``."""
    error = spec_error(path, overrides)
    return None if error is None else error_record(error, path)


def error_record(error: MtdslError, path: str | Path) -> dict:
    """:meth:`~mtdsl.errors.MtdslError.to_dict`, with ``file`` the checked path when the error names no file."""
    record = error.to_dict()
    if record["file"] is None:
        record["file"] = str(path)
    return record


def spec_error(path: str | Path, overrides: dict[str, str] | None = None) -> MtdslError | None:
    """The first error in the spec at ``path``, or ``None`` when it would compile."""
    try:
        build_graph(load_spec(path, overrides))
    except MtdslError as error:
        return error
    return None
