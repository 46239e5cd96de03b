"""Field types shared by the configs: strict flags and bounded numbers.

Every number a spec can set has an upper bound that no real run comes near
but that stops absurd values (``classes = 10000000``, ``bifpn(repeats =
255)``, ``seed = 2**64``) at the spec, with a located error, before anything
is allocated. Non-finite numbers are refused by every config
(``allow_inf_nan=False`` in their ``model_config``).

>>> from pydantic import TypeAdapter
>>> TypeAdapter(Epochs).validate_python(10)
10
>>> TypeAdapter(Flag).validate_python("yes")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for bool
  Input should be a valid boolean [type=bool_type, input_value='yes', input_type=str]
...
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, Strict

#: ``true`` or ``false`` and nothing else: the spec's names ``true``/``false`` lower to Python bools,
#: so ``yes``, ``on``, ``1`` and ``"true"`` are errors instead of pydantic's lax guesses.
Flag = Annotated[bool, Strict()]

MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 4096
MAX_WORKERS = 256
#: numpy's and Python's generators take any seed, but 32 bits is what every seed in a run is reduced to.
MAX_SEED = 2**32 - 1
MAX_LEARNING_RATE = 10.0
MAX_WEIGHT = 10_000.0
MAX_CLASSES = 100_000
#: Feature widths of necks and pyramid heads (EfficientDet-D7's BiFPN has 384 channels).
MAX_CHANNELS = 1024
#: Hidden widths of classification heads.
MAX_HIDDEN = 16_384
MAX_HIDDEN_LAYERS = 16
#: Repeated layers: BiFPN repeats, head depths (EfficientDet-D7 has 8 and 5).
MAX_DEPTH = 16
#: Input height and width in pixels (EfficientDet-D7 reads 1536).
MAX_SIDE = 4096
MAX_TEMPERATURE = 100.0
#: The exponent of ``poly``; DeepLab uses 0.9.
MAX_POWER = 10.0
#: A part's learning rate relative to the schedule's (``lr_scale``).
MAX_LR_FACTOR = 100.0

Epochs = Annotated[int, Field(gt=0, le=MAX_EPOCHS)]
EpochSpan = Annotated[float, Field(ge=0.0, le=MAX_EPOCHS)]
BatchSize = Annotated[int, Field(gt=0, le=MAX_BATCH_SIZE)]
Workers = Annotated[int, Field(ge=0, le=MAX_WORKERS)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
LearningRate = Annotated[float, Field(gt=0.0, le=MAX_LEARNING_RATE)]
#: A probability-like share in [0, 1): dropout, momentum, Adam's betas, label smoothing.
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
Weight = Annotated[float, Field(ge=0.0, le=MAX_WEIGHT)]
PositiveWeight = Annotated[float, Field(gt=0.0, le=MAX_WEIGHT)]
Channels = Annotated[int, Field(gt=0, le=MAX_CHANNELS)]
Hidden = Annotated[int, Field(gt=0, le=MAX_HIDDEN)]
Depth = Annotated[int, Field(gt=0, le=MAX_DEPTH)]
Side = Annotated[int, Field(gt=0, le=MAX_SIDE)]
Temperature = Annotated[float, Field(gt=0.0, le=MAX_TEMPERATURE)]
LrFactor = Annotated[float, Field(gt=0.0, le=MAX_LR_FACTOR)]


def _none_word(value: object) -> object:
    """The spec's name ``none`` (a string once lowered) is Python's None."""
    return None if value == "none" else value


#: A positive number or ``none`` (off): ``grad_clip = none`` spells the default, so a ``let``
#: variable can switch the setting on from the command line (``--set clip=5``) and off again.
PositiveWeightOrNone = Annotated[PositiveWeight | None, BeforeValidator(_none_word)]


#: Whole epochs or ``none`` (off): ``early_stop = 5``, or ``none`` to spell the default.
EpochsOrNone = Annotated[Epochs | None, BeforeValidator(_none_word)]
