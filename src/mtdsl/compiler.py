"""The pipeline: spec file → validated spec → sharing graph → artefacts.

>>> from mtdsl.compiler import compile_text  # doctest: +SKIP
>>> model = compile_text(open("specs/quickstart.mtl").read()).model()  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx

from mtdsl.codegen.train_source import generate_train_source
from mtdsl.errors import ArtefactError
from mtdsl.files import write_atomic
from mtdsl.graph.build import build_graph
from mtdsl.graph.serialize import graph_to_json
from mtdsl.model_cache import ModelFacts
from mtdsl.render.dot import write_diagram
from mtdsl.render.summary import summarize
from mtdsl.spec.document import Spec
from mtdsl.spec.load import load_spec, load_text

if TYPE_CHECKING:
    from mtdsl.nn.model import MultiTaskModel


@dataclass
class Compilation:
    spec: Spec
    graph: nx.DiGraph
    summary: dict | None = None
    written: list[Path] = field(default_factory=list)
    facts: ModelFacts | None = field(default=None, repr=False)

    def model(self) -> MultiTaskModel:
        """A fresh, randomly initialised module for this spec."""
        from mtdsl.nn.model import MultiTaskModel

        return MultiTaskModel(self.graph)

    @property
    def model_facts(self) -> ModelFacts:
        """What needs torch to answer (sizes, FLOPs, ``model.py``), kept per model (:mod:`mtdsl.model_cache`)."""
        if self.facts is None:
            self.facts = ModelFacts(self.graph, self.spec.source.path)
        return self.facts


def compile_spec(spec: Spec) -> Compilation:
    """The spec's sharing graph, with the parameter count of every neck and head (built on the meta device once)."""
    facts = ModelFacts(build_graph(spec), spec.source.path)
    return Compilation(spec, facts.size_graph(), facts=facts)


def compile_file(path: str | Path, overrides: dict[str, str] | None = None) -> Compilation:
    return compile_spec(load_spec(path, overrides))


def compile_text(text: str, path: str = "<spec>", overrides: dict[str, str] | None = None) -> Compilation:
    return compile_spec(load_text(text, path, overrides))


def write_model_source(compilation: Compilation, out: Path) -> list[Path]:
    return [write_atomic(out / "model.py", compilation.model_facts.model_source())]


def write_train_source(compilation: Compilation, out: Path) -> list[Path]:
    return [write_atomic(out / "train.py",
                         generate_train_source(compilation.spec, compilation.graph, str(out / "train.py")))]


def write_graph_json(compilation: Compilation, out: Path) -> list[Path]:
    return [write_atomic(out / "graph.json", graph_to_json(compilation.graph))]


def write_architecture(compilation: Compilation, out: Path) -> list[Path]:
    return write_diagram(compilation.graph, out)


def write_summary(compilation: Compilation, out: Path) -> list[Path]:
    compilation.summary = summarize(compilation.graph, flops=compilation.model_facts.flops())
    return [write_atomic(out / "summary.json", json.dumps(compilation.summary, indent=2) + "\n")]


ARTEFACTS: tuple[Callable[[Compilation, Path], list[Path]], ...] = (
    write_model_source,
    write_train_source,
    write_graph_json,
    write_architecture,
    write_summary,
)


def write_artefacts(
    compilation: Compilation, out: str | Path, artefacts=ARTEFACTS
) -> Compilation:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ArtefactError(f"cannot create output folder {out}: {error}", hint="choose another --out") from None
    for artefact in artefacts:
        compilation.written += artefact(compilation, out)
    return compilation
