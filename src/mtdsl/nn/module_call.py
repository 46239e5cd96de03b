"""A module's constructor call as data, so building it and writing it into ``model.py`` cannot drift apart.

>>> from torch import nn
>>> call = ModuleCall(nn.Conv2d, (3, 8, 3), {"padding": 1})
>>> call.source()
'Conv2d(3, 8, 3, padding=1)'
>>> call.build().padding
(1, 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mtdsl.codegen.literal import literal


@dataclass(frozen=True)
class ModuleCall:
    """``target(*args, **kwargs)``: arguments must be values :func:`~mtdsl.codegen.literal.literal` can write.

    ``imports`` is the import line that makes ``target`` available in generated source.
    """

    target: type[nn.Module]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    imports: str = ""

    def build(self) -> nn.Module:
        return self.target(*self.args, **self.kwargs)

    def source(self) -> str:
        arguments = [literal(value) for value in self.args] + [f"{key}={literal(v)}" for key, v in self.kwargs.items()]
        return f"{self.target.__name__}({', '.join(arguments)})"
