"""An exponential moving average of the weights (``train { ema = 0.9998 }``), through timm's ``ModelEmaV3``.

After every optimizer step the average moves towards the weights:
``average ← decay · average + (1 - decay) · weights``, for parameters and
BatchNorm statistics alike (``ModelEmaV3``'s default). Its decay is taken at the
run's global step (timm's ``get_decay(step)``: the first step copies the
weights, and ``warmup = true`` ramps the decay up as ``1 - (1 + step)^(-2/3)``),
and that step is saved with the run, so a resumed run continues the same
average. With the average on, validation, the choice of the best epoch and the
test all read the averaged weights; every checkpoint holds them under ``ema``,
and :func:`mtdsl.train.run.checkpoint.inference_weights` hands them to ``mtdsl
eval``, ``predict`` and ``export``.

>>> import torch
>>> from mtdsl.spec.training import EmaConfig
>>> model = torch.nn.Linear(1, 1, bias=False)
>>> _ = torch.nn.init.constant_(model.weight, 0.0)
>>> average = build_average(EmaConfig(decay=0.5), model)
>>> _ = torch.nn.init.constant_(model.weight, 1.0)
>>> average.update(model, step=2)  # step 1 would copy the weights
>>> average.module.weight.item()
0.5
"""

from __future__ import annotations

from timm.utils import ModelEmaV3
from torch import nn

from mtdsl.spec.training import EmaConfig


def build_average(config: EmaConfig | None, model: nn.Module) -> ModelEmaV3 | None:
    """The average of ``model``'s weights the spec asks for, on the model's device; ``None`` when it asks for none.

    Built after the model is on its device and before any DistributedDataParallel wraps it, as timm
    advises: each rank keeps its own average of the same weights.
    """
    if config is None:
        return None
    return ModelEmaV3(model, decay=config.decay, use_warmup=config.warmup)
