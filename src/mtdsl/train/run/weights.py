"""A model's weights as a ``.safetensors`` file: what a run leaves and every export carries beside its program.

A checkpoint (``best.pt``) is torch's zip format with the optimiser, the random
states and the fingerprints in it; ``model.safetensors`` is just the model's
``state_dict``, readable without torch's unpickler by any safetensors reader
(Rust, JavaScript, NumPy) and loadable into the generated ``model.py``::

    from safetensors.torch import load_file
    model.load_state_dict(load_file("runs/quickstart/model.safetensors"))

Its metadata (strings, as safetensors wants) say where the weights came from.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "model.safetensors"
>>> weights = {"a.weight": torch.ones(2, 2), "a.bias": torch.zeros(2)}
>>> _ = save_weights(weights, path, spec="demo", epoch=3)
>>> from safetensors import safe_open
>>> with safe_open(str(path), "pt") as file:
...     sorted(file.keys()), file.metadata()["epoch"]
(['a.bias', 'a.weight'], '3')
>>> non_finite({"a": torch.tensor([1.0, float("nan")]), "b": torch.ones(1), "steps": torch.tensor(3)})
['a']
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from mtdsl.errors import ArtefactError

WEIGHTS_NAME = "model.safetensors"


def save_weights(state_dict: Mapping[str, torch.Tensor], path: Path, **metadata: object) -> Path:
    """Write ``state_dict`` to ``path`` as safetensors, atomically (a temporary file, then a rename).

    Every tensor is copied to its own contiguous CPU storage: safetensors refuses tensors that share memory,
    and a view (a tied or sliced weight) would otherwise write its whole base. ``metadata`` values are
    written as strings.

    Raises:
        ArtefactError: the file could not be written (e.g. no space left on the device).
    """
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().to("cpu", copy=True).contiguous() for name, tensor in state_dict.items()}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(temporary), metadata={key: str(value) for key, value in metadata.items()})
        os.replace(temporary, path)
    except OSError as error:
        raise ArtefactError(f"cannot write {path}: {error.strerror or error}",
                            hint="free space on that disk, or choose another folder") from None
    finally:
        temporary.unlink(missing_ok=True)
    return path


def non_finite(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """The names of ``state_dict``'s floating-point tensors holding a NaN or an infinity, in order."""
    return [name for name, tensor in state_dict.items()
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
