"""``mtdsl check``: a spec parsed, validated and resolved to the paths of its sharing graph, in a fraction of a second.

It runs every stage ``mtdsl compile`` runs that can find a mistake, and no
more: :func:`~mtdsl.spec.load.load_spec` (parse, lower, the spec's checks),
then what :func:`~mtdsl.graph.build.build_graph` does before it assembles the
graph: the graph stage's checks (:func:`~mtdsl.graph.checks.run_graph_checks`)
and each task's path through the shared and private segments
(:func:`~mtdsl.graph.paths.task_paths`, whose own errors are graph errors).
Assembling the networkx graph from those paths cannot fail, so it is left
out, and with it the ~0.2 s import of networkx (which is loaded only to name
a cycle). No torch or timm is imported unless a spec needs timm's metadata
for a backbone it has not read before:

* the spec's own rules (syntax, names, values, references between
  declarations, classes, heads and losses that fit their tasks, sampling,
  phases' epochs) never need it;
* the rules on backbones (:mod:`mtdsl.graph.checks`: a timm model that
  exists and can be cut, a neck's strides, ``branch``/``tap`` segments,
  freeze targets such as ``trunk.stage3``) and the task paths read each
  backbone's metadata from timm once, on the meta device, and keep it in a
  cache file (:mod:`mtdsl.graph.backbone_cache`); later checks of any spec
  with that model read the file. A misspelt model name imports timm to
  suggest names.

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
from mtdsl.graph.checks import run_graph_checks
from mtdsl.graph.paths import task_paths
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
        task_paths(run_graph_checks(load_spec(path, overrides)))
    except MtdslError as error:
        return error
    return None


def data_report(path: str | Path, overrides: dict[str, str] | None = None) -> list[str]:
    """``mtdsl check --data``: open every dataset the spec names, without building the model.

    Each dataset is read as training reads it (its annotation files parsed, every
    image and mask path checked, labels and classes matched against its tasks,
    the splits made), its streams' splits are checked, and each detect task's
    anchors are measured against its training boxes
    (:mod:`mtdsl.train.loop.anchor_fit`). This imports torch.

    Returns:
        What training would print before its first step: a line per stream, data
        warnings, and a line per detect task on its anchors' fit.

    Raises:
        MtdslError: the spec's own errors, as :func:`spec_error` finds them, or a
            :class:`~mtdsl.errors.DataError` located at the declaration of the
            dataset that cannot be read.
    """
    import torch

    from mtdsl.codegen.train_source import detection_setups
    from mtdsl.errors import DataError, Span
    from mtdsl.graph.build import build_graph
    from mtdsl.train.data.loaders import StreamLoaders
    from mtdsl.train.data.tasks import task_labels
    from mtdsl.train.loop.anchor_fit import coverage_lines

    spec = load_spec(path, overrides)
    graph = build_graph(spec)
    labels = {task.task: task for task in task_labels(spec)}
    size = (spec.model.input.height, spec.model.input.width)
    try:
        data = StreamLoaders(spec.streams, spec.datasets, labels, image_size=size, mean=(0.0,) * 3, std=(1.0,) * 3,
                             seed=0, workers=0, on_corrupt="error", device=torch.device("cpu"))
    except DataError as error:
        span: Span | None = spec.span("dataset", error.dataset) if error.dataset else None
        if error.span is None and span is not None:
            error.span = span
            error.with_source(spec.source)
        raise
    return data.describe() + coverage_lines(detection_setups(spec, graph), data)
