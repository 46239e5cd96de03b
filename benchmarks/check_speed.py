"""Wall time of ``mtdsl check SPEC`` for every spec in ``specs/``, against issue 12's goal of 0.5 s per spec.

Each spec is checked in fresh subprocesses of this Python
(``python -m mtdsl check SPEC``, ``PYTHONPATH`` at this checkout's ``src/``),
each spec with a cache folder of its own (``MTDSL_CACHE_DIR``), so that:

* ``cold`` is the first check, with the cache folder empty: timm (and torch)
  are imported to read the backbone's metadata, and lark analyses the grammar;
* ``warm`` is the median of ``--repeats`` checks after it, which read both from
  the cache folder, as every check after a backbone's first one does; ``cpu``
  is the median user + system time of those runs, which a machine busy with
  other work inflates less than wall time;
* ``torch`` says whether a warm check imported torch or timm (it should not).

``python -c pass`` is timed the same way, as the interpreter's own floor.

    .venv/bin/python benchmarks/check_speed.py [--repeats 5] [--specs specs/*.mtl]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import machine_line

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 0.5

PROBE = """
import json, sys
from mtdsl.cli import main
code = main(["check", sys.argv[1]])
print(json.dumps({"code": code, "torch": "torch" in sys.modules or "timm" in sys.modules}))
"""


def environment(cache: Path) -> dict[str, str]:
    env = dict(os.environ, MTDSL_CACHE_DIR=str(cache))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def timed(arguments: list[str], cache: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall and CPU (user + system) seconds of one ``python ARGUMENTS`` child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, *arguments], env=environment(cache), capture_output=True, text=True,
                            cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result


def check_spec(spec: Path, repeats: int, cache: Path) -> dict:
    arguments = ["-m", "mtdsl", "check", str(spec)]
    cold, _, result = timed(arguments, cache)
    if result.returncode != 0:
        raise SystemExit(f"mtdsl check {spec} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    runs = [timed(arguments, cache)[:2] for _ in range(repeats)]
    probe = json.loads(timed(["-c", PROBE, str(spec)], cache)[2].stdout.strip().splitlines()[-1])
    return {"cold": cold, "warm": statistics.median(w for w, _ in runs), "cpu": statistics.median(c for _, c in runs),
            "torch": probe["torch"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--specs", type=Path, nargs="+", default=sorted((ROOT / "specs").glob("*.mtl")))
    args = parser.parse_args()
    print(machine_line())
    print(f"mtdsl check SPEC in fresh processes; warm: median of {args.repeats} after the cold one; times in seconds")
    with tempfile.TemporaryDirectory() as folder:
        python = statistics.median(timed(["-c", "pass"], Path(folder))[0] for _ in range(args.repeats))
        print(f"python -c pass: {python:.2f}\n")
        print(f"{'spec':<20} {'cold':>6} {'warm':>6} {'cpu':>6}  {'torch':<5}  goal ≤ {GOAL_SECONDS} s (warm)")
        missed = 0
        for spec in args.specs:
            result = check_spec(spec, args.repeats, Path(folder) / spec.stem)
            met = result["warm"] <= GOAL_SECONDS
            missed += not met
            print(f"{spec.name:<20} {result['cold']:6.2f} {result['warm']:6.2f} {result['cpu']:6.2f}  "
                  f"{'yes' if result['torch'] else 'no':<5}  {'met' if met else 'missed'}")
    print(f"\n{len(args.specs) - missed} of {len(args.specs)} specs within {GOAL_SECONDS} s (warm)")


if __name__ == "__main__":
    main()
