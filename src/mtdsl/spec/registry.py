"""Registries of config kinds (``linear(...)``, ``sgd(...)``, ``folder(...)``) and of what implements them.

A call in a spec names a kind. The kind's pydantic config class is registered
under that name in a :class:`Registry` of the spec layer (``HEAD_CONFIGS`` in
:mod:`mtdsl.spec.heads`), so a spec is validated without importing torch. The
code that implements the kind (a head module, a loss, a sampling strategy)
registers itself under the same key in a :class:`Builders` bound to that
registry, in ``nn/`` or ``train/``: the one registry pattern of every kind.

>>> from typing import Literal
>>> DEMO = Registry("demo")
>>> @DEMO.register("thing")
... class ThingConfig(Config):
...     kind: Literal["thing"] = "thing"
...     size: int = 1
>>> DEMO.get("thing").model_validate({"size": 3}).size
3
>>> AREAS = Builders(DEMO)
>>> @AREAS.register("thing")
... def thing_area(config):
...     return config.size**2
>>> AREAS.build(ThingConfig(size=3))
9
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

MISPLACED_BOOLEAN = "true and false are booleans, and this field does not take one"


class SpecModel(BaseModel):
    """Base of every model a spec fills in: frozen; unknown keys, ``inf``, ``nan`` and misplaced booleans are errors.

    ``true``/``false`` lower to Python bools, which pydantic would quietly read
    as ``1``/``0`` in a number field (``epochs = true``); only fields that hold
    booleans take them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_only_where_expected(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _holds_bool(value) and not _takes_bool(field.annotation):
            raise ValueError(MISPLACED_BOOLEAN)
        return value


def _holds_bool(value: object) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_bool(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_bool(item) for item in value.values())
    return False


def _takes_bool(annotation: object) -> bool:
    """Whether a field's type holds a bool anywhere (``Flag``, ``Flag | None``, ``list[Flag]``)."""
    if annotation is bool:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return False  # a nested model checks its own fields
    return any(_takes_bool(arg) for arg in typing.get_args(annotation))


class Config(SpecModel):
    """Base of every kind's config: frozen, unknown keys are errors, and so are ``inf`` and ``nan``.

    Class variables shape how a call's arguments map onto fields:
    ``positional`` names the fields filled by positional arguments, in order;
    ``keywords_field`` names a dict field that collects keyword arguments that
    are not fields (e.g. per-task ratios in ``fixed(a = 0.7, b = 0.3)``).
    """

    positional: ClassVar[tuple[str, ...]] = ()
    keywords_field: ClassVar[str | None] = None

    if typing.TYPE_CHECKING:  # every kind declares it as a Literal; not a field of the base, so no field order moves
        kind: str


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


BuilderT = TypeVar("BuilderT", bound=Callable[..., Any])
ImplementationT = TypeVar("ImplementationT", bound=Callable[..., Any])


class Builders(Mapping[str, BuilderT]):
    """What implements each kind of one config :class:`Registry`, keyed like the configs.

    ``register(kind)`` refuses a kind the registry lacks or one registered twice,
    when the implementing module is imported; :meth:`missing` lists config kinds
    that nothing implements yet (a test asserts there are none). A read-only
    mapping of kind → builder otherwise.
    """

    def __init__(self, configs: Registry[Any]) -> None:
        self.configs = configs
        self._builders: dict[str, BuilderT] = {}

    def register(self, kind: str) -> Callable[[ImplementationT], ImplementationT]:
        """A decorator: the builder of ``kind``. It may take ``kind``'s own config class, narrower than the
        registry's: :meth:`build` dispatches on ``config.kind``, so it is only called with that class."""
        def decorate(builder: ImplementationT) -> ImplementationT:
            if kind not in self.configs:
                raise ValueError(f"{self.configs.what} '{kind}' has a builder but no registered config")
            if kind in self._builders:
                raise ValueError(f"{self.configs.what} '{kind}' has two builders")
            self._builders[kind] = cast(BuilderT, builder)
            return builder

        return decorate

    def build(self, config: Config, *args: Any, **kwargs: Any) -> Any:
        """``builder(config, *args, **kwargs)`` for the builder of ``config.kind``."""
        return self[config.kind](config, *args, **kwargs)  # type: ignore[attr-defined]

    def missing(self) -> list[str]:
        return [kind for kind in self.configs.kinds() if kind not in self._builders]

    def __getitem__(self, kind: str) -> BuilderT:
        return self._builders[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)
