"""Registries of config kinds: ``linear(...)``, ``sgd(...)``, ``folder(...)``.

A call in a spec names a kind; the kind's pydantic config class is
registered under that name, beside the code that implements it (a head's
config lives next to the head module and both use the key ``"linear"``).

>>> from typing import Literal
>>> DEMO = Registry("demo")
>>> @DEMO.register("thing")
... class ThingConfig(Config):
...     kind: Literal["thing"] = "thing"
...     size: int = 1
>>> DEMO.get("thing").model_validate({"size": 3}).size
3
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict


class Config(BaseModel):
    """Base of every kind's config: frozen, unknown keys are errors, and so are ``inf`` and ``nan``.

    Class variables shape how a call's arguments map onto fields:
    ``positional`` names the fields filled by positional arguments, in order;
    ``keywords_field`` names a dict field that collects keyword arguments that
    are not fields (e.g. per-task ratios in ``fixed(a = 0.7, b = 0.3)``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    positional: ClassVar[tuple[str, ...]] = ()
    keywords_field: ClassVar[str | None] = None


ConfigT = TypeVar("ConfigT", bound=Config)


class Registry(Generic[ConfigT]):
    """Config classes of one sort (``what``), keyed by kind name."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._configs: dict[str, type[ConfigT]] = {}

    def register(self, kind: str):
        def decorate(config: type[ConfigT]) -> type[ConfigT]:
            if kind in self._configs:
                raise ValueError(f"{self.what} kind '{kind}' is registered twice")
            self._configs[kind] = config
            return config

        return decorate

    def get(self, kind: str) -> type[ConfigT]:
        return self._configs[kind]

    def __contains__(self, kind: object) -> bool:
        return kind in self._configs

    def kinds(self) -> list[str]:
        return list(self._configs)
