"""What every benchmark here shares: the machine line, and timing A/B side by side.

Each benchmark imports this as ``from _timing import ...``; running a script as
``python benchmarks/NAME.py`` puts ``benchmarks/`` on ``sys.path``.

:func:`side_by_side` gives every contender the same work items in turn, the
order reversed every other round (A, B, C, then C, B, A), so warm-up, a clock
change or another process on the machine hits all of them alike; the first
``warmup`` rounds are dropped.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import torch

MIN_RUNS = 20
CPU = torch.device("cpu")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line(device: torch.device | str = "cpu") -> str:
    """One line naming what the numbers were measured on: CPU, cores, load, torch, and the GPU when used."""
    import timm

    cores = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    line = (f"machine: {cpu_model()}, {cores} cores (torch threads {torch.get_num_threads()}), "
            f"load {load:.2f}, python {platform.python_version()}, torch {torch.__version__}, timm {timm.__version__}")
    if torch.device(device).type == "cuda":
        line += f", GPU {torch.cuda.get_device_name(torch.device(device))}"
    return line


def check_runs(runs: int) -> None:
    """Say so when fewer than :data:`MIN_RUNS` timed runs were asked for (a smoke run, not a measurement)."""
    if runs < MIN_RUNS:
        print(f"note: {runs} timed runs, fewer than the {MIN_RUNS} a measurement needs: a smoke run only")


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def side_by_side(
    contenders: Mapping[str, Callable[[int], object]],
    rounds: int,
    *,
    warmup: int = 3,
    device: torch.device = CPU,
) -> dict[str, list[float]]:
    """Seconds per call of each contender over ``rounds`` timed rounds, after ``warmup`` untimed ones.

    Args:
        contenders: name → ``work(round_index)``; every contender gets the same index in a round.
        rounds: timed rounds (see :func:`check_runs`).
        warmup: leading rounds run the same way but not kept.
        device: synchronised around each call when it is a GPU.
    """
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(warmup + rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            synchronise(device)
            started = time.perf_counter()
            contenders[name](index)
            synchronise(device)
            times[name].append(time.perf_counter() - started)
    return {name: values[warmup:] for name, values in times.items()}


def median_ms(seconds: Sequence[float]) -> float:
    return statistics.median(seconds) * 1e3


def spread(seconds: Sequence[float]) -> str:
    """``p25–p75 ms``: how much the timed rounds varied (a wide range means a noisy machine)."""
    if len(seconds) < 2:
        return "n/a"
    quartiles = statistics.quantiles(seconds, n=4)
    return f"{quartiles[0] * 1e3:.1f}–{quartiles[2] * 1e3:.1f} ms"
