"""``mtdsl compare --train``: the multi-task model and each single-task model, trained at one stated budget.

The multi-task model trains first, as ``mtdsl train`` would. Its log says how
many training images each task saw in each epoch and how long each epoch took;
each task's single-task model then trains with that task's budget
(:class:`mtdsl.train.loop.budget.Budget`), epoch by epoch:

* ``images`` (the default): exactly as many images of its data as the task saw
  inside the multi-task run;
* ``seconds``: the single-task models together train as long as the multi-task
  model did, each for the share of every epoch's time that its task's images
  had (so N models cost what one did).

Every run is an ordinary run folder under ``OUT/runs/`` (``multi-task``,
``single-<task>``) with its own ``train.py``, log, checkpoints and plots, so any
number in the comparison can be traced to the run that produced it. A stopped
comparison resumes: finished runs are read back, unfinished ones continue.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mtdsl.compare import MULTI
from mtdsl.compare.single_task import single_task_specs
from mtdsl.compiler import Compilation, compile_spec
from mtdsl.launch import finished, train_compiled
from mtdsl.train.loop.budget import Budget
from mtdsl.train.run.folder import RunFolder
from mtdsl.train.run.report import MetricsLog


def run_folders(out: Path, tasks: list[str]) -> dict[str, RunFolder]:
    """``OUT/runs/multi-task`` and ``OUT/runs/single-<task>`` for each task."""
    folders = {MULTI: RunFolder(out / "runs" / MULTI)}
    folders.update({task: RunFolder(out / "runs" / f"single-{task}") for task in tasks})
    return folders


def train_all(compilation: Compilation, out: Path, *, budget: str, seed: int | None, device: str | None,
              workers: int | None, resume: bool, overwrite: bool, quiet: bool,
              announce: Callable[[str], None] = print) -> dict:
    """Train the multi-task model, then every single-task model at its task's budget; return what they scored.

    Returns:
        ``{"budget", "seed", "runs": {name: run}}`` with one entry for ``multi-task`` and one per task,
        each ``{"folder", "epochs", "seconds", "images": {task: images seen}, "metrics": {task: {"metric",
        "value", "split"}}}``.
    """
    spec = compilation.spec
    singles = {task: compile_spec(single) for task, single in single_task_specs(spec, compilation.graph).items()}
    folders = run_folders(out, list(spec.model.tasks))
    if not resume:  # refuse a used folder before the first run, not after it
        for folder in folders.values():
            with folder.claim(resume=False, overwrite=overwrite):
                pass
    runs = {MULTI: _train(compilation, folders[MULTI], None, seed=seed, device=device, workers=workers,
                          resume=resume, quiet=quiet, keep_spec=True, announce=announce)}
    for task, single in singles.items():
        announce(f"single-task {task}: {budget} budget of its multi-task run "
                 f"({_describe(runs[MULTI], task, budget)})")
        runs[task] = _train(single, folders[task], task_budget(runs[MULTI], task, budget), seed=seed, device=device,
                            workers=workers, resume=resume, quiet=quiet, keep_spec=False, announce=announce)
    return {"budget": budget, "seed": spec.train.seed if seed is None else seed, "runs": runs,
            "time": training_time(runs, list(spec.model.tasks))}


def training_time(runs: dict[str, dict], tasks: list[str]) -> dict[str, float]:
    """The training payoff: the multi-task run's time against the single-task runs' summed time.

    ``seconds`` are the training steps' (``metrics.jsonl``'s per-epoch ``seconds``) and ``wall_seconds``
    add each epoch's evaluation; images per second count each task's training images (an image that
    trains three tasks counts three times, on both sides, so the rates compare like for like).

    >>> runs = {"multi-task": {"seconds": 60.0, "wall_seconds": 66.0, "images": {"a": 600, "b": 600}},
    ...         "a": {"seconds": 50.0, "wall_seconds": 53.0, "images": {"a": 600}},
    ...         "b": {"seconds": 70.0, "wall_seconds": 74.0, "images": {"b": 600}}}
    >>> training_time(runs, ["a", "b"])["ratio"]
    0.5
    """
    multi = runs[MULTI]
    single_seconds = sum(runs[task]["seconds"] for task in tasks)
    single_images = sum(runs[task]["images"][task] for task in tasks)
    multi_images = sum(multi["images"].values())
    return {
        "multi_seconds": multi["seconds"],
        "single_seconds": single_seconds,
        "ratio": multi["seconds"] / single_seconds if single_seconds else float("nan"),
        "multi_wall_seconds": multi["wall_seconds"],
        "single_wall_seconds": sum(runs[task]["wall_seconds"] for task in tasks),
        "multi_images_per_second": multi_images / multi["seconds"] if multi["seconds"] else float("nan"),
        "single_images_per_second": single_images / single_seconds if single_seconds else float("nan"),
    }


def _train(compilation: Compilation, run: RunFolder, budget: Budget | None, *, seed, device, workers, resume,
           quiet, keep_spec, announce) -> dict:
    if resume and finished(run, compilation):
        announce(f"{run.root}: finished already, reading its results")
    else:
        # A run stopped before its first checkpoint has nothing to continue from: it starts again.
        started = resume and run.last.exists()
        train_compiled(compilation, run, resume=started, overwrite=resume and not started, seed=seed,
                       device=device, workers=workers, quiet=quiet, keep_spec=keep_spec, budget=budget,
                       announce=announce)
    return read_run(run)


def read_run(run: RunFolder) -> dict:
    """What a finished run's ``metrics.jsonl`` says: images and seconds per epoch, and its test results."""
    records = MetricsLog.read(run.metrics)
    epochs = [r for r in records if r["event"] == "train"]
    test = [r for r in records if r["event"] == "test"][-1]
    tasks = list(test["main"])
    return {
        "folder": str(run.root),
        "epochs": len(epochs),
        "seconds": sum(r["seconds"] for r in epochs),
        "wall_seconds": sum(r["seconds"] + r.get("val_seconds", 0.0) for r in epochs),
        "images": {task: sum(r["images"].get(task, 0) for r in epochs) for task in tasks},
        "images_per_epoch": {task: [r["images"].get(task, 0) for r in epochs] for task in tasks},
        "seconds_per_epoch": [r["seconds"] for r in epochs],
        "metrics": {task: {"metric": test["mains"][task], "value": test["main"][task],
                           "split": test["splits"].get(task)} for task in tasks},
    }


def task_budget(multi: dict, task: str, kind: str) -> Budget:
    """``task``'s budget in the multi-task run ``multi`` (see the module docstring)."""
    images = multi["images_per_epoch"]
    if kind == "images":
        return Budget.of("images", images[task])
    shares = [images[task][e] / max(1, sum(images[t][e] for t in images)) for e in range(multi["epochs"])]
    return Budget.of("seconds", [seconds * share for seconds, share in zip(multi["seconds_per_epoch"], shares)])


def _describe(multi: dict, task: str, kind: str) -> str:
    if kind == "images":
        return f"{multi['images'][task]:,} images over {multi['epochs']} epochs"
    seconds = task_budget(multi, task, kind).seconds
    assert seconds is not None  # a "seconds" budget holds them
    return f"{sum(seconds):.0f} s of training over {multi['epochs']} epochs"
