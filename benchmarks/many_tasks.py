"""Wall time and peak memory of ``mtdsl check`` and ``mtdsl compile`` on a spec of N classify tasks.

Issue 23 (item 9.11): 2,000 tasks took 0.9 s to check and 187 s / 1.17 GB to
compile, because the cost summary ran one forward pass per task to count its
FLOPs. Each N runs in fresh subprocesses (``python -m mtdsl``, ``PYTHONPATH`` at
this checkout's ``src/``) on a generated spec: one test_resnet backbone, one
synthetic dataset, N tasks ``t0 … tN-1`` of three classes each. The last column
is the time per task over the previous N's: near 1 when the time grows linearly
(after the fixed cost of starting Python and importing torch).

    .venv/bin/python benchmarks/many_tasks.py [--tasks 100,200,400]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import machine_line

ROOT = Path(__file__).resolve().parents[1]


def many_tasks_spec(count: int) -> str:
    """A spec of ``count`` classify tasks on one backbone and one dataset."""
    lines = ["model many", "input 3x32x32", 'backbone trunk = timm("test_resnet")',
             "dataset d = synthetic(count = 64, size = 32)"]
    lines += [f"task t{index}: classify(d) {{ classes = 3 }}" for index in range(count)]
    return "\n".join([*lines, "train { epochs = 1; batch_size = 16 }"]) + "\n"


def timed(arguments: list[str], cache: Path) -> tuple[float, float]:
    """Wall seconds and peak resident memory (GiB) of one ``python -m mtdsl ARGUMENTS`` child."""
    env = dict(os.environ, MTDSL_CACHE_DIR=str(cache))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    # A child of its own per run, so ru_maxrss of RUSAGE_CHILDREN is this run's (each N is larger than the last).
    result = subprocess.run([sys.executable, "-m", "mtdsl", *arguments], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"mtdsl {' '.join(arguments)} failed ({result.returncode}):\n{result.stderr}")
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="100,200,400", help="comma-separated task counts, ascending")
    args = parser.parse_args()
    counts = [int(count) for count in args.tasks.split(",")]
    print(machine_line())
    print(f"{'tasks':>6} {'check s':>8} {'compile s':>10} {'peak GiB':>9} {'compile s/task vs previous':>27}")
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder) / "cache"
        previous: tuple[int, float] | None = None
        for count in counts:
            spec = Path(folder) / f"many{count}.mtl"
            spec.write_text(many_tasks_spec(count), encoding="utf-8")
            check, _ = timed(["check", str(spec)], cache)
            compile_, peak = timed(["compile", str(spec), "--out", str(Path(folder) / f"build{count}")], cache)
            growth = f"{(compile_ / count) / (previous[1] / previous[0]):.2f}" if previous else ""
            print(f"{count:>6} {check:>8.2f} {compile_:>10.2f} {peak:>9.2f} {growth:>27}")
            previous = (count, compile_)


if __name__ == "__main__":
    main()
