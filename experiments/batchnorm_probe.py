"""Does moving BatchNorm's running statistics alone undo a heads-only model? (docs/experiments.md, (a))

Loads a run's best checkpoint, scores every task on the validation split, then
runs ``--passes`` training-mode forward passes per stream over training
batches, with no gradient and no optimizer step (so only BatchNorm's running
statistics move, as they do from the first step once every layer trains), and
scores again.

    python experiments/batchnorm_probe.py runs/exp/plants/seed2/runs/multi-task --passes 30
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _run import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder written by mtdsl train")
    parser.add_argument("--passes", type=int, default=30, help="training-mode forward passes per stream")
    args = parser.parse_args()
    run = load_run(args.run)
    print(f"best epoch {run.checkpoint['state']['epoch']}, BatchNorm statistics as saved: {run.validation()}")
    run.model.train()
    with torch.no_grad():
        for _ in range(args.passes):
            for index, stream in enumerate(run.loop.STREAMS):
                run.model(run.data.next_batch(index)["image"], tasks=stream.tasks)
    print(f"after {args.passes} training-mode forward passes per stream, no gradient step: {run.validation()}")


if __name__ == "__main__":
    main()
