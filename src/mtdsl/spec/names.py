"""Which names a backbone, neck, dataset or task may have.

Declared names become ``nn.ModuleDict`` keys (``model.heads[task]``,
``model.necks[neck]``), keys of generated Python, freeze targets and graph
nodes. A name that is already an attribute of ``nn.Module`` (``train``,
``eval``, ``to``, ``parameters``, …) cannot be a ``ModuleDict`` key, a Python
keyword cannot be written where generated code needs a name, and a freeze
word (``heads``, ``shared``, …) would change what ``freeze = [heads]`` means.

>>> reserved_reason("train", "task")[:37]
'it would shadow nn.Module.train: task'
>>> reserved_reason("breed", "task") is None
True
"""

from __future__ import annotations

import functools
import keyword

from mtdsl.errors import SpecNameError, Span

#: Freeze targets that name a sort of part, not one declared part; no declaration may take these names.
FREEZE_WORDS = {
    "shared": "every segment used by two tasks or more",
    "backbones": "every backbone segment",
    "branches": "every task-private segment copy",
    "heads": "every head",
    "necks": "every neck",
}


#: The graph's input node; a neck's node carries the neck's own name, so a neck may not take it.
INPUT_NODE = "input"


@functools.lru_cache(maxsize=1)
def module_attributes() -> frozenset[str]:
    """Every attribute of an ``nn.ModuleDict`` instance: methods, properties and instance state."""
    from torch import nn  # only when a spec is checked: the name rules themselves do not need torch

    return frozenset(dir(nn.ModuleDict()))


def reserved_reason(name: str, what: str) -> str | None:
    """Why ``name`` cannot name a ``what`` (``"task"``, ``"backbone"``, ``"neck"``, ``"dataset"``), or ``None``."""
    if keyword.iskeyword(name):
        return "it is a Python keyword, and generated model.py and train.py use names in Python code"
    if name in module_attributes():
        if what == "dataset":
            return (
                f"it is an attribute of every PyTorch module (nn.Module.{name}), and datasets share one "
                "namespace with tasks, backbones and necks, whose names key the model's nn.ModuleDicts"
            )
        return f"it would shadow nn.Module.{name}: {what} names become keys of the model's nn.ModuleDicts"
    if what != "dataset" and name in FREEZE_WORDS:
        return f"freeze = [{name}] already means {FREEZE_WORDS[name]}"
    if what == "neck" and name == INPUT_NODE:
        return "'input' is the sharing graph's input node, and a neck's node takes the neck's name"
    return None


def check_declared_name(name: str, what: str, span: Span) -> None:
    """Refuse a declared name that is reserved (see :func:`reserved_reason`), pointing at the name.

    Raises:
        SpecNameError: with the reason and a renaming hint.
    """
    reason = reserved_reason(name, what)
    if reason is None:
        return
    raise SpecNameError(
        f"a {what} cannot be named '{name}': {reason}",
        span,
        expected="a name that is not a Python keyword, an nn.Module attribute (train, eval, to, …) "
        f"or a freeze word ({', '.join(FREEZE_WORDS)})",
        hint=f"rename it, e.g. {name}_{what} or my_{name}",
    )
