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

import keyword

from mtdsl.errors import Span, SpecNameError

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


#: Every attribute of an ``nn.ModuleDict`` instance (methods, properties, instance state): ``dir(nn.ModuleDict())``
#: of torch 2.14, written out so that checking a name needs no torch. ``tests/test_spec_names.py`` declares every
#: attribute of the installed torch's ``ModuleDict`` as a name, so it fails when this table lacks one.
MODULE_ATTRIBUTES = frozenset({
    'T_destination', '__annotations__', '__call__', '__class__', '__contains__', '__delattr__', '__delitem__',
    '__dict__', '__dir__', '__doc__', '__eq__', '__format__', '__ge__', '__getattr__', '__getattribute__',
    '__getitem__', '__getstate__', '__gt__', '__hash__', '__init__', '__init_subclass__', '__iter__', '__le__',
    '__len__', '__lt__', '__module__', '__ne__', '__new__', '__reduce__', '__reduce_ex__', '__repr__',
    '__setattr__', '__setitem__', '__setstate__', '__sizeof__', '__str__', '__subclasshook__', '__weakref__',
    '_apply', '_backward_hooks', '_backward_pre_hooks', '_buffers', '_call_impl', '_compiled_call_impl',
    '_forward_hooks', '_forward_hooks_always_called', '_forward_hooks_with_kwargs', '_forward_pre_hooks',
    '_forward_pre_hooks_with_kwargs', '_get_backward_hooks', '_get_backward_pre_hooks', '_get_name',
    '_is_full_backward_hook', '_load_from_state_dict', '_load_state_dict_post_hooks', '_load_state_dict_pre_hooks',
    '_maybe_warn_non_full_backward_hook', '_modules', '_named_members', '_non_persistent_buffers_set',
    '_parameters', '_register_load_state_dict_pre_hook', '_register_state_dict_hook',
    '_replicate_for_data_parallel', '_save_to_state_dict', '_slow_forward', '_state_dict_hooks',
    '_state_dict_pre_hooks', '_version', '_wrapped_call_impl', 'add_module', 'apply', 'bfloat16', 'buffers',
    'call_super_init', 'children', 'clear', 'compile', 'cpu', 'cuda', 'double', 'dump_patches', 'eval',
    'extra_repr', 'float', 'forward', 'get_buffer', 'get_extra_state', 'get_parameter', 'get_submodule', 'half',
    'ipu', 'items', 'keys', 'load_state_dict', 'modules', 'mtia', 'named_buffers', 'named_children',
    'named_modules', 'named_parameters', 'parameters', 'pop', 'register_backward_hook', 'register_buffer',
    'register_forward_hook', 'register_forward_pre_hook', 'register_full_backward_hook',
    'register_full_backward_pre_hook', 'register_load_state_dict_post_hook', 'register_load_state_dict_pre_hook',
    'register_module', 'register_parameter', 'register_state_dict_post_hook', 'register_state_dict_pre_hook',
    'requires_grad_', 'set_extra_state', 'set_submodule', 'share_memory', 'state_dict', 'to', 'to_empty', 'train',
    'training', 'type', 'update', 'values', 'xpu', 'zero_grad'
})


def module_attributes() -> frozenset[str]:
    """Every attribute of an ``nn.ModuleDict`` instance (:data:`MODULE_ATTRIBUTES`)."""
    return MODULE_ATTRIBUTES


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
