"""Checkpoints: atomic to write, safe to read, and tied to the spec that made them.

A checkpoint is a plain dict of tensors and primitives, so it loads with
``torch.load(weights_only=True)`` (no pickled code runs). It carries two
fingerprints (:mod:`mtdsl.train.run.fingerprints`): ``model_hash`` (the sharing
graph: which modules exist, under which names) and ``spec_hash`` (the whole
spec, training included). Evaluating
needs the first to match, resuming needs both.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch

from mtdsl.errors import TrainingError

FORMAT_VERSION = 1


def save_checkpoint(state: dict, path: Path) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, flushed to disk, then a rename.

    Whatever stops the write (a full disk, a signal), the temporary file is removed and
    ``path`` keeps its previous contents.

    Raises:
        TrainingError: the file could not be written (e.g. no space left on the device).
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as file:
            torch.save({"format_version": FORMAT_VERSION, **state}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except (OSError, RuntimeError) as error:
        temporary.unlink(missing_ok=True)
        cause = _os_error(error)
        if cause is None:
            raise
        kept = f"{path} still holds the previous checkpoint" if path.exists() else f"nothing was written to {path}"
        # --resume starts from the run's last checkpoint, beside this one; before the first there is none.
        again = ("continue with --resume" if path.with_name("last.pt").exists()
                 else "start the run again with --overwrite (no checkpoint was saved to resume from)")
        raise TrainingError(
            f"cannot write checkpoint {path}: {cause.strerror or cause}; {kept}",
            hint=f"free space on that disk (or choose another --out), then {again}",
        ) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _os_error(error: BaseException) -> OSError | None:
    """The OSError behind ``error``: torch reports a failed write as a RuntimeError of its zip writer."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def load_checkpoint(path: Path, *, model_hash: str, spec_hash: str | None = None) -> dict:
    """Read a checkpoint written for this model (and, when ``spec_hash`` is given, this exact spec).

    Raises:
        TrainingError: the file is missing, unreadable, or was written for another spec.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"no checkpoint at {path}", hint="train first, or pass the path of a .pt file")
    try:
        state = _read(path)
    except Exception as error:
        raise TrainingError(
            f"cannot read checkpoint {path}: {str(error).splitlines()[0]}",
            hint="the file is damaged or not an mtdsl checkpoint; use another one (checkpoints/best.pt or last.pt)",
        ) from None
    if not isinstance(state, dict):
        # weights_only still reads any nest of tensors and containers: a list saved by hand, say.
        raise TrainingError(
            f"{path} is not an mtdsl checkpoint: it holds a {type(state).__name__}, not the dict of weights "
            "and fingerprints mtdsl train writes",
            hint="pass a checkpoint written by mtdsl train (checkpoints/best.pt or last.pt of its run folder)",
        )
    if state.get("model_hash") != model_hash:
        raise TrainingError(
            f"checkpoint {path} was trained for a different model "
            f"(spec '{state.get('spec_name', '?')}', model fingerprint {state.get('model_hash')}, "
            f"this spec's is {model_hash})",
            hint="pass the spec the checkpoint was trained from (a copy is saved as spec.mtl in its run folder)",
        )
    if spec_hash is not None and state.get("spec_hash") != spec_hash:
        raise TrainingError(
            f"cannot resume from {path}: the spec's training settings changed since it was written "
            f"(fingerprint {state.get('spec_hash')}, now {spec_hash})",
            hint="resume with the spec unchanged, or start a new run with another --out "
            "(to start from these weights, set pretrained = \"<path>\" on the backbone)",
        )
    return state


def inference_weights(checkpoint: dict) -> dict:
    """The weights to evaluate, predict or export with: the average's (``ema``) when the run kept one."""
    return checkpoint.get("ema") or checkpoint["model"]


def _read(path: Path) -> object:
    """``torch.load`` of ``path``, mapped into memory: checking the fingerprints costs no read of the weights.

    torch's file reader takes the path as UTF-8, and a path with a byte that is not UTF-8 (which
    Python holds as a lone surrogate) cannot be encoded; such a file is read through an open file
    instead, unmapped.
    """
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        with open(path, "rb") as file:
            return torch.load(file, map_location="cpu", weights_only=True)
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(_as_python_state(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_python_state(value):
    if isinstance(value, list):
        return tuple(_as_python_state(v) for v in value)
    return value
