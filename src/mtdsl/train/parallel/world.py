"""The processes of one run: which one this is, and what they decide together.

``torchrun --nproc_per_node N`` starts N copies of the training loop and tells
each who it is through ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``.
:class:`World` reads them, joins the process group (NCCL on CUDA, gloo on CPU)
and offers the few collectives the loop needs, each a no-op in a single process,
so the single-process loop runs exactly as before:

* :meth:`World.read_out`: every task's loss at each of the steps since the last
  read-out, averaged over the ranks, plus any rank's request to stop, in one
  all-reduce (:mod:`mtdsl.train.loop.readout`). Every rank then sees the same
  values, so a non-finite loss or a SIGTERM stops all of them at the same
  step, and none is left waiting in a collective for a rank that has gone;
* :meth:`World.on_main`: something only rank 0 does (claim the run folder),
  whose failure every rank learns of;
* :meth:`World.broadcast`, :meth:`World.gather`, :meth:`World.any`: decisions
  taken once and shared.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from signal import SIGTERM
from typing import Any, TypeVar, cast

import torch
import torch.distributed as dist

from mtdsl.errors import FailedElsewhere, MtdslError, TrainingError
from mtdsl.train.run.stop_signals import stop_requested

T = TypeVar("T")

#: How long a rank waits in a collective for the others before it gives up (torch's default is 30 minutes).
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class World:
    """This process's place among the run's processes: ``rank`` of ``size``, ``local_rank`` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> World:
        """The world ``torchrun`` describes in the environment; one process when it describes none.

        Raises:
            TrainingError: a variable is not a whole number, or the rank is outside the world.
        """
        environ = os.environ if environ is None else environ
        values = {}
        for name, default in (("WORLD_SIZE", 1), ("RANK", 0), ("LOCAL_RANK", 0)):
            text = environ.get(name, "").strip()
            try:
                values[name] = int(text) if text else default
            except ValueError:
                raise TrainingError(f"{name}={text!r} is not a whole number",
                                    hint="launch with torchrun, which sets WORLD_SIZE, RANK and LOCAL_RANK") from None
        world = cls(rank=values["RANK"], size=values["WORLD_SIZE"], local_rank=values["LOCAL_RANK"])
        if world.size < 1 or not 0 <= world.rank < world.size or world.local_rank < 0:
            raise TrainingError(f"RANK={world.rank} and LOCAL_RANK={world.local_rank} do not name one of "
                                f"WORLD_SIZE={world.size} processes",
                                hint="launch with torchrun, which sets WORLD_SIZE, RANK and LOCAL_RANK")
        return world

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run folder and prints."""
        return self.rank == 0

    def label(self, message: str) -> str:
        """``message`` as this rank prints it: as it is on rank 0, after ``rank N:`` on the others."""
        return message if self.is_main else f"rank {self.rank}: {message}"

    def launcher(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """How this process was started, for the command that resumes it: ``python``, or torchrun with its sizes."""
        if not self.distributed:
            return ["python"]
        environ = os.environ if environ is None else environ
        per_node = int(environ.get("LOCAL_WORLD_SIZE") or self.size)
        nodes = ["--nnodes", str(self.size // per_node)] if per_node != self.size else []
        return ["torchrun", "--nproc_per_node", str(per_node), *nodes]

    def device(self, chosen: torch.device) -> torch.device:
        """The device of this rank: on CUDA, GPU ``LOCAL_RANK``, so each process of a machine has its own.

        Raises:
            TrainingError: a GPU was named by number in a run of several processes.
        """
        if not self.distributed or chosen.type != "cuda":
            return chosen
        if chosen.index is not None:
            raise TrainingError(f"--device {chosen} names one GPU, but {self.size} processes would share it",
                                hint="pass --device cuda: each process takes the GPU of its LOCAL_RANK")
        return torch.device("cuda", self.local_rank)

    @contextlib.contextmanager
    def joined(self, device: torch.device) -> Iterator[World]:
        """Within the block, this process is in the process group (when there are several; once per process)."""
        if not self.distributed or dist.is_initialized():
            yield self
            return
        if device.type == "cuda":
            torch.cuda.set_device(device)
        try:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT,
                                    device_id=device if device.type == "cuda" else None)
        except (ValueError, RuntimeError) as error:
            missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
            raise TrainingError(
                f"process {self.rank} of {self.size} could not join the others: "
                + (f"{' and '.join(missing)} not set" if missing else str(error).splitlines()[0]),
                hint="launch with `torchrun --nproc_per_node N -m mtdsl train SPEC` or `mtdsl train SPEC --nproc N`, "
                "which set WORLD_SIZE, RANK, MASTER_ADDR and MASTER_PORT",
            ) from None
        try:
            yield self
        finally:
            dist.destroy_process_group()

    # ------------------------------------------------------------- collectives

    def _tensor(self, values: list[float]) -> torch.Tensor:
        on = torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
        return torch.tensor(values, dtype=torch.float64, device=on)

    def read_out(self, losses: torch.Tensor, extras: torch.Tensor) -> tuple[list[float], int | None]:
        """Several steps' values on the host, in one copy: ``losses`` averaged over the ranks, then
        ``extras`` (this rank's own, e.g. gradient norms) as they are; and the signal that asks the run
        to stop after these steps (``None`` when none did), the same on every rank whichever rank it reached.

        A NaN or infinite loss on any rank makes the average non-finite on all of them, so the
        check that follows stops every rank at the same step.
        """
        signal = stop_requested()
        if not self.distributed:
            return torch.cat([losses, extras]).tolist(), signal
        on = torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
        values = torch.cat([losses.to(on, torch.float64), self._tensor([float(signal or 0)])])
        dist.all_reduce(values)
        host = torch.cat([values, extras.to(on, torch.float64)]).tolist()  # the one wait for the device
        *sums, signals = host[: losses.numel() + 1]
        own = host[losses.numel() + 1 :]
        stop = (signal or SIGTERM) if signals else None  # another rank's stop: torchrun forwards SIGTERM
        return [total / self.size for total in sums] + own, stop

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank."""
        if not self.distributed:
            return flag
        value = self._tensor([float(flag)])
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def all(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every rank."""
        return not self.any(not flag)

    def total(self, count: int) -> int:
        """``count`` summed over the ranks."""
        if not self.distributed:
            return count
        value = self._tensor([float(count)])
        dist.all_reduce(value)
        return round(value.item())

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value``, on every rank."""
        if not self.distributed:
            return value
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather(self, value: T) -> list[T] | None:
        """Every rank's ``value`` in rank order, on rank 0; ``None`` on the others."""
        if not self.distributed:
            return [value]
        gathered: list[Any] | None = [None] * self.size if self.is_main else None
        dist.gather_object(value, gathered, dst=0)
        return gathered

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def average_gradients(self, parameters: Iterator[torch.nn.Parameter] | list[torch.nn.Parameter]) -> None:
        """Average the gradients of parameters outside DistributedDataParallel (learned loss weights)."""
        if not self.distributed:
            return
        for parameter in parameters:
            if parameter.grad is not None:
                dist.all_reduce(parameter.grad)
                parameter.grad /= self.size

    def average_batchnorm(self, model: torch.nn.Module) -> None:
        """Average BatchNorm running statistics over the ranks, as timm's ``distribute_bn(reduce=True)`` does.

        Each rank's statistics saw only its share of the batches; after this every rank holds
        the same ones, so evaluation and checkpoints do not depend on which rank saved them.
        """
        if not self.distributed:
            return
        for name, buffer in model.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                dist.all_reduce(buffer)
                buffer /= self.size

    def batchnorm_statistics(self, model: torch.nn.Module) -> list[dict[str, torch.Tensor]] | None:
        """Every rank's BatchNorm running statistics, on rank 0 (``None`` elsewhere, and with one process).

        Within an epoch each rank's statistics are its own (they are averaged at the epoch's end), so
        a checkpoint taken there keeps them all, for :meth:`restore_batchnorm`.
        """
        if not self.distributed:
            return None
        return self.gather({name: buffer.detach().cpu().clone() for name, buffer in model.named_buffers()
                            if name.endswith(("running_mean", "running_var"))})

    def restore_batchnorm(self, model: torch.nn.Module, per_rank: list[dict[str, torch.Tensor]] | None) -> None:
        """Put back this rank's statistics from :meth:`batchnorm_statistics`; their mean when the number
        of processes changed (what the epoch's end would have averaged them to)."""
        if not per_rank:
            return
        if len(per_rank) == self.size:
            chosen = per_rank[self.rank]
        else:
            chosen = {name: cast(torch.Tensor, sum(rank[name] for rank in per_rank)) / len(per_rank)
                      for name in per_rank[0]}
        buffers = dict(model.named_buffers())
        with torch.no_grad():
            for name, value in chosen.items():
                buffers[name].copy_(value)

    def check_replicas(self, model: torch.nn.Module, epoch: int) -> None:
        """Stop every rank when their weights or BatchNorm statistics are not bit for bit the same.

        Raises:
            TrainingError: they differ (a bug in mtdsl, not in the spec: the run would otherwise
                go on as several models and save only rank 0's).
        """
        if not self.distributed:
            return
        digests = self.gather(state_digest(model))
        differ = self.broadcast(digests is not None and len(set(digests)) > 1)
        if differ:
            raise TrainingError(f"after epoch {epoch} the {self.size} processes no longer hold the same weights",
                                hint="this is a bug in mtdsl's distributed training: please report it with the spec")

    def sync_batchnorm(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``model`` with BatchNorm layers that compute their statistics over every rank's share of a batch.

        Raises:
            TrainingError: not on CUDA (torch's SyncBatchNorm runs on GPUs only).
        """
        if not self.distributed:
            return model
        if device.type != "cuda":
            raise TrainingError("--sync-batchnorm needs CUDA: torch's SyncBatchNorm runs on GPUs only",
                                hint="leave it out; BatchNorm statistics are still averaged over the processes "
                                "after every epoch")
        from timm.layers import convert_sync_batchnorm  # keeps timm's BatchNormAct2d activations

        return convert_sync_batchnorm(model)

    @contextlib.contextmanager
    def on_main(self, context: contextlib.AbstractContextManager[Any]) -> Iterator[None]:
        """Enter ``context`` on rank 0 only; the others wait, and stop too when rank 0 could not enter it."""
        if not self.distributed:
            with context:
                yield
            return
        with contextlib.ExitStack() as stack:
            failure = None
            if self.is_main:
                try:
                    stack.enter_context(context)
                except MtdslError as error:
                    failure = error
            failed = self.broadcast(failure is not None)
            if failure is not None:
                raise failure
            if failed:
                raise FailedElsewhere("rank 0 could not start the run (its error is above)")
            yield

    def seed_step(self, seed: int, epoch: int, step: int) -> None:
        """With several ranks, give each its own dropout and drop-path masks for a step, fixed by the seed.

        Seeding every step afresh makes a resumed run continue as the uninterrupted one would have,
        whatever rank saved the checkpoint. One process keeps its single generator (saved in checkpoints).
        """
        if self.distributed:
            torch.manual_seed((seed * 1_000_003 + self.rank * 7919 + epoch * 104_729 + step) % 2**63)


def state_digest(model: torch.nn.Module) -> str:
    """A SHA-256 of every parameter and buffer of ``model``, bit for bit."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()

