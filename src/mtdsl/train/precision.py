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
    """``requested`` (``cpu``, ``cuda``, ``cuda:1``), else CUDA when available, else CPU."""
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise TrainingError(f"--device {requested}: no CUDA device is available here", hint="use --device cpu")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
