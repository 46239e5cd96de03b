"""One training run of a compiled spec: claim the run folder, write the artefacts, run the generated loop.

``mtdsl train`` runs one; ``mtdsl compare --train`` runs the multi-task model
and each single-task model this way, each in its own folder. The loop that
trains is always the generated ``train.py`` written into the run folder, so
what ran is there to read.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from mtdsl.compiler import ARTEFACTS, Compilation, write_artefacts
from mtdsl.files import write_atomic
from mtdsl.train.loop.budget import Budget
from mtdsl.train.loop.precision import pick_device
from mtdsl.train.loop.runtime import load_generated
from mtdsl.train.parallel.world import World
from mtdsl.train.run.checkpoint import load_checkpoint
from mtdsl.train.run.fingerprints import model_hash, spec_hash
from mtdsl.train.run.folder import RunFolder
from mtdsl.train.run.provenance import resolved_spec
from mtdsl.train.run.report import MetricsLog
from mtdsl.train.run.tracking import require_spec_trackers


def train_compiled(compilation: Compilation, run: RunFolder, *, resume: bool, overwrite: bool, seed: int | None,
                   device: str | None, workers: int | None, quiet: bool, keep_spec: bool = True,
                   budget: Budget | None = None, announce=print, sync_batchnorm: bool = False) -> dict:
    """Train ``compilation`` into ``run`` and return the loop's test results (``splits``, ``results``, ``mains``).

    ``resume`` continues the run from its last checkpoint (refused when the spec changed since);
    ``keep_spec`` keeps the spec text that was compiled as ``spec.mtl`` beside the artefacts;
    ``seed`` and ``workers`` default to the spec's. The caller handles ``KeyboardInterrupt`` (Ctrl-C, SIGTERM).
    Under torchrun every process calls this; rank 0 claims the folder and writes the artefacts.
    """
    require_spec_trackers(compilation.spec)  # before anything is written, at the spec's track line
    world = World.from_environment()
    with world.joined(world.device(pick_device(device))), \
            world.on_main(_written(compilation, run, resume=resume, overwrite=overwrite, keep_spec=keep_spec)):
        if world.is_main:
            announce(f"compiled {compilation.spec.name} → {run.root}/ (training loop: {run.root / 'train.py'})")
        loop = load_generated(run.root / "train.py")
        return loop.train(run.root, resume=resume, overwrite=overwrite,
                          seed=compilation.spec.train.seed if seed is None else seed, device=device,
                          workers=loop.WORKERS if workers is None else workers, quiet=quiet, budget=budget,
                          sync_batchnorm=sync_batchnorm)


@contextlib.contextmanager
def _written(compilation: Compilation, run: RunFolder, *, resume: bool, overwrite: bool,
             keep_spec: bool) -> Iterator[None]:
    """Hold ``run`` and write the artefacts the loop runs from into it."""
    with run.claim(resume=resume, overwrite=overwrite):
        if resume and run.last.exists():
            # Refuse a changed spec before its artefacts overwrite the ones the run was trained with.
            load_checkpoint(run.last, model_hash=model_hash(compilation.graph), spec_hash=spec_hash(compilation.spec))
        write_artefacts(compilation, run.root, ARTEFACTS)
        if keep_spec:
            (run.root / "spec.mtl").write_text(compilation.spec.source.text, encoding="utf-8")
        write_atomic(run.root / "spec.json", json.dumps(resolved_spec(compilation.spec), indent=1, default=str) + "\n")
        yield


def finished(run: RunFolder, compilation: Compilation) -> bool:
    """Whether ``run`` holds a finished run of this very spec (its last checkpoint matches and it was tested)."""
    if not run.last.exists() or not any(r.get("event") == "test" for r in MetricsLog.read(run.metrics)):
        return False
    load_checkpoint(run.last, model_hash=model_hash(compilation.graph), spec_hash=spec_hash(compilation.spec))
    return True

