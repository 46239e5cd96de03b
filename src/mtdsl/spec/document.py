"""A whole validated spec: the model spec, the datasets and the training spec.

``spans`` remembers where each name and key was written, keyed by a path such
as ``("task", "beans", "branch")``, so checks that run after validation (and
the graph passes) can still point at the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

from mtdsl.errors import Source, Span
from mtdsl.spec.data import DatasetConfig
from mtdsl.spec.model import ModelSpec, TimmBackbone
from mtdsl.spec.streams import Stream
from mtdsl.spec.training import TrainSpec

SpanKey = tuple[str, ...]


@dataclass(frozen=True)
class Spec:
    model: ModelSpec
    datasets: dict[str, DatasetConfig]
    train: TrainSpec
    source: Source
    variables: dict[str, object] = field(default_factory=dict)
    spans: dict[SpanKey, Span] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.model.name

    @cached_property
    def streams(self) -> list[Stream]:
        """The spec's streams (:func:`mtdsl.spec.streams.plan_streams`), planned once per spec."""
        from mtdsl.spec import streams  # looked up when asked, so that a test can count the calls

        return streams.plan_streams(self)

    def span(self, *key: str) -> Span | None:
        """The most specific recorded span for ``key`` or one of its prefixes."""
        for length in range(len(key), 0, -1):
            found = self.spans.get(tuple(key[:length]))
            if found is not None:
                return found
        return None

    def with_backbone_models(self, models: dict[str, str], *, pretrained: str | None = None) -> Spec:
        """The same spec with other timm models in the named backbones (tests swap in tiny ones).

        Args:
            models: backbone name → timm model name.
            pretrained: when given, the weights source of the swapped backbones instead of
                their own (weights named for the old model seldom exist for the new one).
        """
        update = {} if pretrained is None else {"pretrained": pretrained}
        backbones = {
            name: backbone.model_copy(update={"model": models[name], **update}) if name in models else backbone
            for name, backbone in self.model.backbones.items()
        }
        return replace(self, model=self.model.model_copy(update={"backbones": backbones}))


__all__ = ["SpanKey", "Spec", "TimmBackbone"]
