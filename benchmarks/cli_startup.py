"""Wall time of ``mtdsl --version``, ``mtdsl check`` and ``mtdsl compile``, against ``import torch``.

First, side by side (issue 23's goals: ``compile`` ≤ 3 s, ``check`` cold ≤ 1.5 s), each as a user
runs it, ``python -m mtdsl …`` in a fresh process, with the ratio to ``python -c "import torch"``:

* ``import torch``: the floor of anything that needs torch;
* ``import timm`` with the cyclic garbage collector off and leaving through ``os._exit``, as
  ``compile`` runs and ends: the floor of a new
  model's compile, which builds it with timm on the meta device (timm imports torch, torchvision
  and, through both, ``torch._dynamo``);
* ``check`` cold: ``mtdsl check specs/quickstart.mtl`` with an empty ``MTDSL_CACHE_DIR``, as the
  first check after installing: timm (and torch) are imported to read the backbone's metadata,
  and lark analyses the grammar; each timed run gets a new empty folder;
* ``check`` warm: the same once that folder holds the metadata and the grammar, as every later
  check (a fresh interpreter each time all the same);
* ``compile``, a model compiled before: ``mtdsl compile specs/quickstart.mtl --out DIR`` once the
  cache holds the model's sizes, FLOPs and ``model.py`` (:mod:`mtdsl.model_cache`), as after any
  edit to a spec's training settings, data or phases;
* ``compile``, a new model: the same with those taken out of the cache, as after an edit to the
  model itself: torch and timm are imported to build it on the meta device;
* with ``--baseline OTHER/src``, the new-model compile of another checkout's code in the same
  rounds, so a change is measured against the code before it under one machine state.

Since mtdsl ships a table of every timm architecture (:mod:`mtdsl.graph.backbone_table`), "cold"
(an empty cache folder) only differs from "warm" for a model the table lacks or when the
installed timm is not the one the table was read from.

``--headline`` stops there; without it, the older split follows:

Every measurement runs in fresh subprocesses of this Python with ``PYTHONPATH``
pointing at this checkout's ``src/``, ``--repeats`` times after one untimed run
(so the disk cache is warm), and the median is printed:

* ``python``: ``python -c pass``, the interpreter's own start-up;
* ``--version``: ``python -m mtdsl --version`` (what a user waits for before anything happens);
* the imports ``mtdsl compile`` needs, once with a normal exit and once ending
  in ``os._exit(0)``: the difference is the interpreter's shutdown with torch and timm loaded;
* ``compile``: ``python -m mtdsl compile SPEC --out DIR`` for each spec in ``specs/``;
* the split, from a child that times, in order: ``import mtdsl.cli``; the
  modules ``mtdsl compile`` imports (``mtdsl.compiler``, ``mtdsl.render``);
  ``compile_file(SPEC)`` and ``write_artefacts(...)`` (the work, first call, so
  any import done lazily inside it counts as work); and both again (the work
  once everything is loaded); the child's own wall time gives its exit time.

Last it lists the packages that dominate ``import mtdsl.cli`` and the compile imports
(``python -X importtime``).

    taskset -c 1 .venv/bin/python benchmarks/cli_startup.py [--headline] [--repeats 5] [--specs specs/*.mtl]
        [--baseline OTHER_CHECKOUT/src]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import machine_line

ROOT = Path(__file__).resolve().parents[1]

SPLIT = """
import json, sys, time
spec, out = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
import mtdsl.cli
t1 = time.perf_counter()
from mtdsl.compiler import ARTEFACTS, compile_file, write_artefacts
import mtdsl.render.dot, mtdsl.render.summary
t2 = time.perf_counter()
compilation = compile_file(spec)
t3 = time.perf_counter()
write_artefacts(compilation, out + "/first", ARTEFACTS)
t4 = time.perf_counter()
write_artefacts(compile_file(spec), out + "/second", ARTEFACTS)
t5 = time.perf_counter()
print(json.dumps({"cli": t1 - t0, "compile_imports": t2 - t1, "compile_file": t3 - t2,
                  "write_artefacts": t4 - t3, "warm_work": t5 - t4}))
"""


def environment(cache: Path | None = None, source: Path = ROOT / "src") -> dict[str, str]:
    env = dict(os.environ)
    if cache is not None:
        env["MTDSL_CACHE_DIR"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
    return env


def run(arguments: list[str], cache: Path | None = None, source: Path = ROOT / "src") -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *arguments], env=environment(cache, source), capture_output=True,
                            text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def wall_seconds(arguments: list[str], repeats: int) -> float:
    """Median wall time of ``python ARGUMENTS`` over ``repeats`` runs after one untimed run."""
    run(arguments)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(arguments)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def split_seconds(spec: Path, repeats: int, folder: Path) -> dict[str, float]:
    """Median of each part of :data:`SPLIT` over ``repeats`` children, and of each child's own wall time."""
    parts = []
    for _ in range(repeats):
        started = time.perf_counter()
        output = run(["-c", SPLIT, str(spec), str(folder)]).stdout
        part = json.loads(output.strip().splitlines()[-1])
        part["child_wall"] = time.perf_counter() - started
        parts.append(part)
    return {key: statistics.median(part[key] for part in parts) for key in parts[0]}


def timed_once(arguments: list[str], cache: Path | None = None, source: Path = ROOT / "src") -> float:
    started = time.perf_counter()
    run(arguments, cache, source)
    return time.perf_counter() - started


#: What a new model's compile cannot do without: timm (with torch), imported and left as ``compile`` does.
TIMM_FLOOR = "import gc, os; gc.disable(); import timm; os._exit(0)"


def headline(repeats: int, folder: Path, baseline: Path | None = None) -> None:
    """``import torch``, ``check`` cold and warm and ``compile`` of the quickstart, side by side, with ratios.

    With ``baseline`` (another checkout's ``src/``), the new-model compile of that code is timed in
    the same rounds, so a change's effect is measured side by side rather than across machine states.
    """
    spec = ROOT / "specs" / "quickstart.mtl"
    check = ["-m", "mtdsl", "check", str(spec)]
    compile_ = ["-m", "mtdsl", "compile", str(spec), "--out", str(folder / "compiled")]
    warm_cache = folder / "warm"
    run(check, warm_cache)  # fills it with the backbone and the grammar
    run(compile_, warm_cache)  # and with the model's sizes, FLOPs and model.py
    model_files = sorted(warm_cache.glob("model-*.json"))
    torch_times, timm_times, cold, warm, compiled, fresh, fresh_baseline = [], [], [], [], [], [], []
    for index in range(repeats + 1):  # interleaved; the first round is untimed (disk cache)
        new_model = folder / f"new{index}"
        shutil.copytree(warm_cache, new_model)
        for path in model_files:
            (new_model / path.name).unlink()
        rounds = (timed_once(["-c", "import torch"]), timed_once(["-c", TIMM_FLOOR]),
                  timed_once(check, folder / f"cold{index}"),
                  timed_once(check, warm_cache), timed_once(compile_, warm_cache), timed_once(compile_, new_model))
        if baseline is not None:
            baseline_cache = folder / f"baseline{index}"
            run(check, baseline_cache, baseline)  # the baseline's own backbone record and grammar, no model
            rounds += (timed_once(compile_, baseline_cache, baseline),)
        if index:
            for times, value in zip((torch_times, timm_times, cold, warm, compiled, fresh, fresh_baseline), rounds):
                times.append(value)
    floor = statistics.median(torch_times)
    print(f"median of {repeats} interleaved rounds after an untimed one, fresh processes; seconds")
    print(f"{'command':<56} {'wall':>6} {'× import torch':>15}  goal")
    for name, times, goal in (('python -c "import torch"', torch_times, ""),
                              ("import timm, collector off, os._exit (new model floor)", timm_times, ""),
                              ("mtdsl check specs/quickstart.mtl (cold: empty cache)", cold, "≤ 1.5 s"),
                              ("mtdsl check specs/quickstart.mtl (warm: cached)", warm, ""),
                              ("mtdsl compile specs/quickstart.mtl (model seen before)", compiled, "≤ 3 s"),
                              ("mtdsl compile specs/quickstart.mtl (new model)", fresh, "≤ 3 s"),
                              (f"  the same with {baseline}", fresh_baseline, "")):
        if not times:
            continue
        value = statistics.median(times)
        verdict = ("met" if value <= float(goal.split()[1]) else "missed") if goal else ""
        print(f"{name:<56} {value:6.2f} {value / floor:14.2f}×  {goal} {verdict}".rstrip())


COMPILE_IMPORTS = "import mtdsl.cli; import mtdsl.compiler, mtdsl.render.dot, mtdsl.render.summary"


def heaviest_imports(code: str, count: int) -> list[tuple[str, float]]:
    """Top-level packages by cumulative import time of ``code`` (``-X importtime``), in seconds."""
    stderr = run(["-X", "importtime", "-c", code]).stderr
    totals: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
            continue
        _, cumulative, name = (field.strip() for field in line.partition(":")[2].split("|"))
        top = name.split(".")[0]
        totals[top] = max(totals.get(top, 0.0), int(cumulative) / 1e6)
    return sorted(totals.items(), key=lambda item: -item[1])[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--specs", type=Path, nargs="+", default=sorted((ROOT / "specs").glob("*.mtl")))
    parser.add_argument("--headline", action="store_true", help="only import torch, check cold/warm and compile")
    parser.add_argument("--baseline", type=Path, metavar="SRC",
                        help="another checkout's src/: time its new-model compile in the same rounds")
    args = parser.parse_args()
    print(machine_line())
    print(f"CPUs this process may use: {sorted(os.sched_getaffinity(0))}")
    with tempfile.TemporaryDirectory() as folder:
        headline(args.repeats, Path(folder), args.baseline and args.baseline.resolve())
    if args.headline:
        return
    print()
    print(f"median of {args.repeats} fresh processes after one untimed run; times in seconds")
    python = wall_seconds(["-c", "pass"], args.repeats)
    version = wall_seconds(["-m", "mtdsl", "--version"], args.repeats)
    imports = wall_seconds(["-c", COMPILE_IMPORTS], args.repeats)
    imports_no_exit = wall_seconds(["-c", COMPILE_IMPORTS + "; import os; os._exit(0)"], args.repeats)
    print(f"python -c pass:                                  {python:6.2f}")
    print(f"mtdsl --version:                                 {version:6.2f}")
    print(f"python -c 'COMPILE IMPORTS':                     {imports:6.2f}")
    print(f"python -c 'COMPILE IMPORTS; os._exit(0)':        {imports_no_exit:6.2f}  "
          f"(interpreter shutdown after them: {imports - imports_no_exit:.2f})")
    print(f"  COMPILE IMPORTS = {COMPILE_IMPORTS}")
    columns = ("wall", "python", "import cli", "compile imports", "compile_file", "write_artefacts", "rest",
               "child exit", "work, warm")
    print("\nmtdsl compile SPEC --out DIR")
    print(f"{'spec':<18}" + "".join(f" {name:>{max(len(name), 6)}}" for name in columns))
    with tempfile.TemporaryDirectory() as folder:
        for spec in args.specs:
            out = Path(folder) / spec.stem
            wall = wall_seconds(["-m", "mtdsl", "compile", str(spec), "--out", str(out / "cli")], args.repeats)
            parts = split_seconds(spec, args.repeats, out)
            measured = python + sum(parts[key] for key in ("cli", "compile_imports", "compile_file", "write_artefacts"))
            child_exit = parts["child_wall"] - measured - parts["warm_work"]
            values = (wall, python, parts["cli"], parts["compile_imports"], parts["compile_file"],
                      parts["write_artefacts"], wall - measured, child_exit, parts["warm_work"])
            cells = (f" {value:{max(len(name), 6)}.2f}" for name, value in zip(columns, values))
            print(f"{spec.name:<18}" + "".join(cells))
    print("\nwall: `mtdsl compile` as a user runs it; python ... write_artefacts: the parts, timed in a child")
    print("rest: wall minus the parts (argument parsing, printing the summary table, process exit)")
    print("child exit: the child's wall time after its last timed line (its process exit), for comparison")
    print("work, warm: compile_file + write_artefacts again in the same process, everything imported")
    for code in ("import mtdsl.cli", COMPILE_IMPORTS):
        print(f"\nheaviest imports of `{code}` (cumulative s, -X importtime, one run):")
        for name, seconds in heaviest_imports(code, 8):
            print(f"  {name:<24} {seconds:6.2f}")


if __name__ == "__main__":
    main()
