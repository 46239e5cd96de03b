"""A module's constructor call as data, so building it and writing it into ``model.py`` cannot drift apart.

Every argument is stored by name (positional ones are bound to the
constructor's parameters), so generated source reads ``in_channels=512``, never
a bare ``512``, and the import it needs follows from the class itself.

>>> from torch import nn
>>> call = ModuleCall.of(nn.Conv2d, 3, 8, 3, padding=1)
>>> call.source()
'Conv2d(in_channels=3, out_channels=8, kernel_size=3, padding=1)'
>>> call.build().padding
(1, 1)
>>> call.module_name
'torch.nn.modules.conv'
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mtdsl.codegen.literal import literal


@dataclass(frozen=True)
class ModuleCall:
    """``target(**kwargs)``: arguments must be values :func:`~mtdsl.codegen.literal.literal` can write."""

    target: type[nn.Module]
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, target: type[nn.Module], *args: Any, **kwargs: Any) -> ModuleCall:
        """The call ``target(*args, **kwargs)`` with every argument named; a wrong name is a TypeError here."""
        return cls(target, dict(inspect.signature(target).bind(*args, **kwargs).arguments))

    @property
    def module_name(self) -> str:
        """The module that defines ``target``: generated source imports it from there."""
        return self.target.__module__

    def build(self) -> nn.Module:
        return self.target(**self.kwargs)

    def source(self) -> str:
        arguments = ", ".join(f"{key}={literal(value)}" for key, value in self.kwargs.items())
        return f"{self.target.__name__}({arguments})"
