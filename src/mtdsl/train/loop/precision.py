"""Device and numeric precision: what ``precision = auto | fp32 | fp16 | bf16`` means on this machine.

``auto`` is bf16 autocast on CUDA devices that support it, fp16 autocast with a
``GradScaler`` on older CUDA devices, and fp32 on CPU (CPU autocast is slower
than fp32 for convolutions). fp16 needs a GPU; bf16 also runs on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mtdsl.errors import TrainingError

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Precision:
    name: str
    dtype: torch.dtype | None

    @property
    def autocast(self) -> bool:
        return self.dtype is not None

    @property
    def needs_scaler(self) -> bool:
        return self.dtype is torch.float16


def pick_device(requested: str | None = None) -> torch.device:
    """``requested`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``), else CUDA when available, else CPU.

    Raises:
        TrainingError: the name is not a device, or names one this machine does not have.
    """
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    have = ["cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
                      if torch.cuda.is_available() else [])
    try:
        device = torch.device(requested)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise TrainingError(f"--device {requested} is not a device mtdsl can train on",
                            expected=f"one of: {', '.join(have)}", hint="e.g. --device cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"--device {requested}: no CUDA device is available here", hint="use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise TrainingError(f"--device {requested}: this machine has {torch.cuda.device_count()} CUDA device(s)",
                            expected=f"one of: {', '.join(have)}", hint="use --device cuda:0")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise TrainingError(f"--device {requested}: no MPS device is available here", hint="use --device cpu")
    return device


def resolve_precision(setting: str, device: torch.device) -> Precision:
    if setting == "auto":
        if device.type != "cuda":
            return Precision("fp32", None)
        setting = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if setting == "fp32":
        return Precision("fp32", None)
    if setting == "fp16" and device.type != "cuda":
        raise TrainingError(
            "precision = fp16 needs a CUDA device; this run is on the CPU",
            hint="use precision = auto (fp32 on CPU) or bf16",
        )
    return Precision(setting, _DTYPES[setting])
