"""Cost of one training step of mtdsl's generated loop against a hand-written loop, side by side.

Both loops train the same model (the quickstart's three classification tasks on its
backbone) on the same batches already in memory, so data loading is left out and
only the loop's own machinery is compared:

* ``hand-written``: forward, summed losses, ``backward``, ``AdamW.step`` — the minimum;
* ``mtdsl loop``: the step as ``train.py`` writes it — learning rate from the
  schedule, autocast and ``GradScaler`` (disabled on CPU, as ``precision = auto``
  does), the weighting module, the non-finite-loss check, the per-task loss read-out.

Steps take the spec's streams in turn (the quickstart has one: its `large` task is
not balanced), and each loop runs the same sequence. It prints the median time per
step and the ratio.

    .venv/bin/python benchmarks/train_step_overhead.py [--device cuda] [--steps 30] [--batch 64] [--size 64]
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path

import torch
from _timing import check_runs, machine_line, side_by_side

from mtdsl.compiler import compile_file
from mtdsl.nn.losses import build_loss
from mtdsl.spec.streams import plan_streams
from mtdsl.spec.training import CosineScheduleConfig
from mtdsl.train.loop.optimizer import build_optimizer, set_learning_rate
from mtdsl.train.loop.precision import resolve_precision
from mtdsl.train.loop.runtime import stop_on_non_finite
from mtdsl.train.loop.schedule import LearningRate
from mtdsl.train.loop.weighting import build_weighting

SPEC = Path(__file__).resolve().parents[1] / "specs" / "quickstart.mtl"
WARMUP = 3


def batches(streams, size: int, batch: int, steps: int, device: torch.device) -> list[tuple]:
    generator = torch.Generator().manual_seed(0)
    result = []
    for step in range(steps):
        stream = streams[step % len(streams)]
        images = torch.randn(batch, 3, size, size, generator=generator).to(device)
        targets = {
            "shape": torch.randint(0, 3, (batch,), generator=generator),
            "colour": torch.randint(0, 3, (batch,), generator=generator),
            "large": torch.randint(0, 2, (batch,), generator=generator).float(),
        }
        tasks = [task for task in stream.tasks if task in targets]  # the classification tasks
        result.append((tasks, images, {task: targets[task].to(device) for task in tasks}))
    return result


def hand_written_step(model, optimizer, losses, tasks, images, targets) -> None:
    outputs = model(images, tasks=tasks)
    total = sum(losses[task](outputs[task], targets[task]) for task in tasks)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()


def mtdsl_step(model, optimizer, losses, weighting, scaler, precision, schedule, device, step, tasks, images, targets):
    set_learning_rate(optimizer, schedule.at(step / 100))
    with torch.autocast(device.type, dtype=precision.dtype, enabled=precision.autocast):
        outputs = model(images, tasks=tasks)
        task_losses = {task: losses[task](outputs[task].float(), targets[task]) for task in tasks}
    total = weighting(task_losses)
    values = {task: loss.item() for task, loss in task_losses.items()}
    stop_on_non_finite(values, epoch=1, step=step, checkpoint=Path("unused"))
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.step(optimizer)
    scaler.update()
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    device = torch.device(args.device)

    compilation = compile_file(SPEC)
    spec = compilation.spec
    work = batches(plan_streams(spec), args.size, args.batch, args.steps, device)
    losses = {name: build_loss(t.loss) for name, t in spec.train.tasks.items() if name in ("shape", "colour", "large")}
    base = compilation.model().to(device)

    hand_model = copy.deepcopy(base).train()
    hand_optimizer = torch.optim.AdamW(hand_model.parameters(), lr=spec.train.optimizer.lr,
                                       weight_decay=spec.train.optimizer.weight_decay)

    mtdsl_model = copy.deepcopy(base).train()
    weighting = build_weighting(spec.train.weighting, {n: t.weight for n, t in spec.train.tasks.items()}).to(device)
    optimizer = build_optimizer(spec.train.optimizer, mtdsl_model, weighting)
    precision = resolve_precision(spec.train.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.needs_scaler)
    schedule = LearningRate(CosineScheduleConfig(), spec.train.optimizer.lr, epochs=1)
    times = side_by_side(
        {
            "hand": lambda i: hand_written_step(hand_model, hand_optimizer, losses, *work[i]),
            "mtdsl": lambda i: mtdsl_step(mtdsl_model, optimizer, losses, weighting, scaler, precision,
                                          schedule, device, i, *work[i]),
        },
        rounds=len(work) - WARMUP, warmup=WARMUP, device=device,
    )
    hand, ours = times["hand"], times["mtdsl"]

    hand_ms, ours_ms = statistics.median(hand) * 1e3, statistics.median(ours) * 1e3
    print(machine_line(device))
    check_runs(len(hand))
    print(f"device {device}, batch {args.batch}, {args.size}x{args.size}, {len(hand)} timed steps, "
          f"precision {precision.name}")
    print(f"hand-written loop: {hand_ms:8.1f} ms/step")
    print(f"mtdsl loop:        {ours_ms:8.1f} ms/step  ({ours_ms / hand_ms:.2f}x)")


if __name__ == "__main__":
    main()
