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

from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.loop.evaluation import evaluate
from mtdsl.train.loop.precision import resolve_precision
from mtdsl.train.loop.runtime import load_generated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder written by mtdsl train")
    parser.add_argument("--passes", type=int, default=30, help="training-mode forward passes per stream")
    args = parser.parse_args()
    loop = load_generated(args.run / "train.py")
    device = torch.device("cpu")
    model = loop.build_model(device, load_pretrained=False)
    checkpoint = torch.load(args.run / "checkpoints" / "best.pt", map_location=device, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    data = StreamLoaders(loop.STREAMS, loop.DATASETS, loop.TASKS, image_size=loop.INPUT_SIZE,
                         mean=loop.NORMALIZATION[0], std=loop.NORMALIZATION[1], seed=loop.SEED, workers=0,
                         on_corrupt=loop.ON_CORRUPT, device=device)
    precision = resolve_precision("fp32", device)

    def validation() -> dict[str, float]:
        results, mains = evaluate(model, data, "val", loop.OUTPUTS, precision)
        return {task: round(results[task][mains[task]], 3) for task in results}

    print(f"best epoch {checkpoint['state']['epoch']}, BatchNorm statistics as saved: {validation()}")
    model.train()
    with torch.no_grad():
        for _ in range(args.passes):
            for index, stream in enumerate(loop.STREAMS):
                model(data.next_batch(index)["image"], tasks=stream.tasks)
    print(f"after {args.passes} training-mode forward passes per stream, no gradient step: {validation()}")


if __name__ == "__main__":
    main()
