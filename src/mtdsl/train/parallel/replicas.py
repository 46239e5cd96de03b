"""One DistributedDataParallel per stream, over just the parameters that stream trains.

A step of the multi-task loop runs one stream's tasks, so the heads and
branches of the other tasks get no gradient. Plain DDP over the whole model
would wait for those gradients for ever (or, with ``find_unused_parameters``,
search the autograd graph for them on every step). Each stream instead gets its
own DDP, built over the parameters its tasks reach, found once per freezing
phase by a probe: one forward and backward of a two-image batch
(:func:`parameters_used`). Every rank draws the same stream at every step (the
draws come from the seed), so every rank steps the same DDP, and its buckets
are all-reduced while the backward pass still runs, as DDP does for one model.

The DDPs of other streams do nothing on such a step: DDP's hooks act only after
their own module's forward. A stream's module holds parameters only, so DDP
syncs no BatchNorm statistics;
:meth:`~mtdsl.train.parallel.world.World.average_batchnorm` averages them once
an epoch, as timm's ``distribute_bn`` does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mtdsl.spec.streams import Stream
from mtdsl.train.parallel.world import World

Forward = Callable[..., dict]


def parameters_used(model: nn.Module, tasks: Sequence[str], image_size: tuple[int, int],
                    device: torch.device) -> list[str]:
    """The names of the trainable parameters that ``tasks``' outputs depend on, in the model's order.

    The probe runs in eval mode, so BatchNorm statistics and dropout are left as they were, and
    every module's mode is put back as it was.
    """
    trainable = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    if not trainable:
        return []
    modes = {module: module.training for module in model.modules()}  # a phase keeps frozen BatchNorm in eval
    model.eval()
    try:
        with torch.enable_grad():
            outputs = model(torch.zeros(2, 3, *image_size, device=device), tasks=tuple(tasks))
            total = cast(torch.Tensor, sum(tensor.float().sum() for tensor in _tensors(outputs)))
            gradients = torch.autograd.grad(total, [p for _, p in trainable], allow_unused=True)
    finally:
        for module, training in modes.items():
            module.training = training
    return [name for (name, _), gradient in zip(trainable, gradients) if gradient is not None]


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [tensor for item in value for tensor in _tensors(item)]
    return []


class StreamModule(nn.Module):
    """What one stream's DDP wraps: the model's forward for its tasks, owning only the parameters they train.

    The parameters are the model's own objects (nothing is copied); the model itself is held
    outside the module tree, so DDP sees just these.
    """

    _forward: Forward  # kept in __dict__, out of the module tree

    def __init__(self, forward: Forward, tasks: Sequence[str], parameters: dict[str, nn.Parameter]) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        self.trained = nn.ParameterDict({name.replace(".", "/"): parameter for name, parameter in parameters.items()})
        self.__dict__["_forward"] = forward

    def forward(self, images: torch.Tensor) -> dict:
        return self._forward(images, tasks=self.tasks)


class StreamReplicas:
    """Each stream's model (``stream_models[i](images)``): that stream's DDP with several ranks, the model
    itself, asked for the stream's tasks, with one.

    Call :meth:`prepare` after every change of which parameters train (each phase); it builds
    the DDPs anew only when the set changed.
    """

    def __init__(self, model: nn.Module, forward: Forward, streams: Sequence[Stream], world: World,
                 image_size: tuple[int, int], device: torch.device) -> None:
        self.model = model
        self.forward = forward
        self.streams = list(streams)
        self.world = world
        self.image_size = image_size
        self.device = device
        self._trainable: tuple[str, ...] | None = None
        self._replicas: list[nn.Module | None] = []

    def prepare(self) -> None:
        if not self.world.distributed:
            return
        trainable = tuple(name for name, parameter in self.model.named_parameters() if parameter.requires_grad)
        if trainable == self._trainable:
            return
        self._trainable = trainable
        parameters = dict(self.model.named_parameters())
        self._replicas = []
        for stream in self.streams:
            used = parameters_used(self.model, stream.tasks, self.image_size, self.device)
            if not used:  # nothing of this stream trains in this phase: no gradients to share
                self._replicas.append(None)
                continue
            module = StreamModule(self.forward, stream.tasks, {name: parameters[name] for name in used})
            self._replicas.append(DistributedDataParallel(  # a StreamModule has no buffers for DDP to sync
                module, device_ids=[self.device] if self.device.type == "cuda" else None))

    def __getitem__(self, stream_index: int) -> Callable[[torch.Tensor], dict]:
        """Stream ``stream_index``'s model: a batch of images in, the outputs of the stream's tasks out."""
        replica = self._replicas[stream_index] if self.world.distributed else None
        if replica is None:
            return functools.partial(self.forward, tasks=self.streams[stream_index].tasks)
        return replica
