"""What a training step touches, in one object: the model and what learns, samples or counts beside it.

The generated ``train.py`` builds one :class:`Training` and hands it to each
step. It is also the seam for the two things a reader of one process on one
machine may skip: resuming (:meth:`Training.checkpoint` and
:meth:`Training.restore` hold everything a resume needs) and several processes
(:meth:`Training.agree` is the epoch's one agreement between them; with one
process it changes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from timm.utils import ModelEmaV3
from torch import nn

from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.loop.gradients import GradientNorms
from mtdsl.train.loop.readout import StepReadout
from mtdsl.train.loop.sampling import TaskSampler
from mtdsl.train.loop.schedule import LearningRate
from mtdsl.train.loop.state import RunState
from mtdsl.train.loop.weighting import Weighting
from mtdsl.train.parallel.replicas import StreamReplicas
from mtdsl.train.parallel.world import World
from mtdsl.train.run.checkpoint import restore_rng_state, rng_state, save_checkpoint


@dataclass(frozen=True)
class Fingerprints:
    """What a checkpoint says it belongs to: the spec's name, and hashes of the spec and the model."""

    spec_name: str
    spec_hash: str
    model_hash: str


@dataclass
class Training:
    """Args:
    world: the run's processes (one, unless under ``torchrun``).
    model: the multi-task model.
    forward: what runs the model (``torch.compile``'s wrapper, or the model itself).
    stream_models: each stream's forward, through its DistributedDataParallel with several processes.
    data: the streams' loaders.
    weighting: the loss weighting (it may learn weights of its own).
    optimizer: over the model's and the weighting's parameters.
    average: the weights' moving average, or ``None``.
    scaler: GradScaler (off unless fp16).
    sampler: which stream each step trains.
    learning_rate: the schedule, with warm-up and the phases' rates.
    gradient_norms: the backbone's gradient norm per stream.
    readout: the steps' losses and norms, kept on the device until read.
    """

    world: World
    model: nn.Module
    forward: nn.Module
    stream_models: StreamReplicas
    data: StreamLoaders
    weighting: Weighting
    optimizer: torch.optim.Optimizer
    average: ModelEmaV3 | None
    scaler: torch.amp.GradScaler
    sampler: TaskSampler
    learning_rate: LearningRate
    gradient_norms: GradientNorms
    readout: StepReadout

    @property
    def evaluated(self) -> nn.Module:
        """What validation runs: the model, or the moving average of its weights when the spec keeps one."""
        return self.forward if self.average is None else self.average.module

    def checkpoint(self, state: RunState, fingerprints: Fingerprints, validation: dict | None = None) -> dict:
        """Everything a resume needs: weights, optimizer and sampler states, the data's place, the RNG.

        With several processes every rank must call this (the skipped images are summed over them).
        """
        return {
            "spec_name": fingerprints.spec_name, "spec_hash": fingerprints.spec_hash,
            "model_hash": fingerprints.model_hash,
            "model": self.model.state_dict(), "ema": None if self.average is None else self.average.module.state_dict(),
            "weighting": self.weighting.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "sampler": self.sampler.state_dict(),
            "consumed": list(self.data.consumed), "skipped_images": self.world.total(self.data.skipped),
            "state": state.to_dict(), "rng": rng_state(), "validation": validation,
        }

    def save_within_epoch(self, state: RunState, fingerprints: Fingerprints, path: Path) -> None:
        """Save a run stopped within an epoch; each rank's BatchNorm statistics too, as they are only
        averaged at the epoch's end."""
        checkpoint = self.checkpoint(state, fingerprints)
        checkpoint["rank_batchnorm"] = self.world.batchnorm_statistics(self.model)
        if self.average is not None:
            checkpoint["rank_ema_batchnorm"] = self.world.batchnorm_statistics(self.average.module)
        if self.world.is_main:
            save_checkpoint(checkpoint, path)

    def restore(self, checkpoint: dict, seed: int) -> RunState:
        """Put every part back as ``checkpoint`` saved it; the run's state there (``seed`` for a checkpoint
        written before states kept theirs)."""
        self.model.load_state_dict(checkpoint["model"])
        self.world.restore_batchnorm(self.model, checkpoint.get("rank_batchnorm"))
        if self.average is not None:
            self.average.module.load_state_dict(checkpoint["ema"])
            self.world.restore_batchnorm(self.average.module, checkpoint.get("rank_ema_batchnorm"))
        self.weighting.load_state_dict(checkpoint["weighting"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.sampler.load_state_dict(checkpoint["sampler"])
        self.data.consumed = list(checkpoint["consumed"])
        self.data.skipped = checkpoint["skipped_images"] if self.world.is_main else 0  # the ranks' total so far
        restore_rng_state(checkpoint["rng"])
        return RunState.from_dict({"seed": seed, **checkpoint["state"]})

    def agree(self, epoch: int) -> None:
        """The epoch's end with several processes: average the ranks' BatchNorm statistics (the model's and
        the average's), then check that every rank holds the same weights. With one process, nothing."""
        self.world.average_batchnorm(self.model)
        if self.average is not None:
            self.world.average_batchnorm(self.average.module)
        self.world.check_replicas(nn.ModuleList([self.model, self.weighting,
                                                 *([] if self.average is None else [self.average])]), epoch)
