"""Inference latency and peak memory of several models, measured side by side.

Latency: every model runs the same random batch; after ``warmup`` passes each,
the models take turns for ``runs`` rounds (A, B, C, then C, B, A, …) so that
machine noise (another process, a clock change) hits all of them alike, and
each model's median is reported. On CUDA each pass is synchronised.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` over one pass of the
largest batch, weights included. On the CPU, the resident set size a model
adds: each model is built and run in a forked child process, and the child's
peak RSS minus its RSS when it started is reported, so one model's freed
memory cannot hide another's.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

ModelFactory = Callable[[], nn.Module]


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def latencies(
    models: Mapping[str, nn.Module],
    image_size: Sequence[int],
    batch_sizes: Sequence[int],
    device: torch.device,
    *,
    runs: int = 20,
    warmup: int = 3,
) -> dict[str, dict[int, float]]:
    """Median milliseconds per forward pass: ``{model: {batch size: ms}}``.

    Args:
        models: modules in eval mode on ``device``, each called as ``model(images)``.
        image_size: ``(C, H, W)``.
        batch_sizes: the batch sizes to time.
        runs: timed passes per model and batch size (interleaved).
        warmup: untimed passes per model first.
    """
    names = list(models)
    medians: dict[str, dict[int, float]] = {name: {} for name in names}
    with torch.inference_mode():
        for batch in batch_sizes:
            images = torch.randn(batch, *image_size, device=device)
            for name in names:
                for _ in range(warmup):
                    models[name](images)
            times: dict[str, list[float]] = {name: [] for name in names}
            for round_ in range(runs):
                for name in names if round_ % 2 == 0 else reversed(names):
                    _synchronise(device)
                    start = time.perf_counter()
                    models[name](images)
                    _synchronise(device)
                    times[name].append((time.perf_counter() - start) * 1000)
            for name in names:
                medians[name][batch] = statistics.median(times[name])
    return medians


def peak_memory(factories: Mapping[str, ModelFactory], image_size: Sequence[int], batch: int,
                device: torch.device) -> dict[str, int]:
    """Bytes each model needs for one forward pass of ``batch`` images (see the module docstring)."""
    if device.type == "cuda":
        return {name: _cuda_peak(factory, image_size, batch, device) for name, factory in factories.items()}
    return {name: _cpu_peak(factory, image_size, batch) for name, factory in factories.items()}


def _cuda_peak(factory: ModelFactory, image_size: Sequence[int], batch: int, device: torch.device) -> int:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    model = factory().to(device).eval()
    with torch.inference_mode():
        model(torch.randn(batch, *image_size, device=device))
    _synchronise(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del model
    torch.cuda.empty_cache()
    return int(peak)


def _resident_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_resident_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB, macOS bytes


def _child(factory: ModelFactory, image_size: Sequence[int], batch: int, results) -> None:
    torch.set_num_threads(1)  # a forked child must not reuse the parent's thread pool
    start = _resident_bytes()
    model = factory().eval()
    with torch.inference_mode():
        model(torch.randn(batch, *image_size))
    results.put(_peak_resident_bytes() - start)


def _cpu_peak(factory: ModelFactory, image_size: Sequence[int], batch: int) -> int:
    if not os.path.exists("/proc/self/statm"):
        return -1  # no per-process RSS to read (not Linux): reported as unmeasured
    context = multiprocessing.get_context("fork")
    results = context.SimpleQueue()
    child = context.Process(target=_child, args=(factory, image_size, batch, results))
    child.start()
    child.join()
    if child.exitcode != 0 or results.empty():
        return -1
    return int(results.get())
