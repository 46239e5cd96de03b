"""What undoes a heads-only multi-task model once every layer trains? (docs/experiments.md, (a))

Loads a run's best checkpoint (the last heads-only epoch of the plants runs)
with its optimizer state, switches to the run's last phase (every layer, and
its ``batchnorm`` setting), and takes ``--steps`` SGD steps at ``--lr``: the
tasks' streams in turn (``--tasks`` all of them, as the multi-task run does)
or one task's stream alone. Prints each step's loss and the gradient norm at
the shared backbone, and each task's validation score before and after.

    python experiments/unfreeze_probe.py runs/exp/plants_bneval_lr0.001/seed0/runs/multi-task --steps 58
    python experiments/unfreeze_probe.py RUN --steps 58 --tasks bean_health
    python experiments/unfreeze_probe.py RUN --steps 58 --clip 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _run import load_run

from mtdsl.train.loop.freezing import apply_phase
from mtdsl.train.loop.optimizer import build_optimizer, set_learning_rate
from mtdsl.train.loop.weighting import build_weighting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder written by mtdsl train")
    parser.add_argument("--steps", type=int, default=58, help="optimizer steps (58: one plants epoch)")
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--tasks", nargs="+", help="train only these tasks' streams, in turn (default: all)")
    parser.add_argument("--clip", type=float, help="clip the gradient norm, as grad_clip does")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    run = load_run(args.run)
    loop, model = run.loop, run.model
    optimizer = build_optimizer(loop.OPTIMIZER, model, build_weighting(loop.WEIGHTING, loop.LOSS_WEIGHTS))
    optimizer.load_state_dict(run.checkpoint["optimizer"])
    set_learning_rate(optimizer, args.lr)
    print(f"before: {run.validation()}", flush=True)
    apply_phase(model, loop.PHASES[-1])
    streams = [index for index, stream in enumerate(loop.STREAMS)
               if not args.tasks or set(stream.tasks) & set(args.tasks)]
    shared = [parameter for name, parameter in model.named_parameters() if name.startswith("backbone.")]
    for step in range(args.steps):
        index = streams[step % len(streams)]
        stream = loop.STREAMS[index]
        batch = run.data.next_batch(index)
        outputs = model(batch["image"], tasks=stream.tasks)
        losses = {task: loop.LOSSES[task](outputs[task].float(), batch["targets"][task]) for task in stream.tasks}
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in shared if p.grad is not None])).item()
        if args.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        print(f"step {step:3d} " + " ".join(f"{task} loss {value.item():7.3f}" for task, value in losses.items())
              + f"  shared gradient norm {norm:8.2f}", flush=True)
    print(f"after {args.steps} steps: {run.validation()}", flush=True)


if __name__ == "__main__":
    main()
