"""mtdsl's single-task training step against timm's own model trained with a plain PyTorch step.

One classification task compiled by mtdsl (its head reads the backbone's
``pre_logits``, so the model is timm's classifier with its modules renamed) is
trained beside ``timm.create_model(NAME, num_classes=N)``. Three contenders run
the same batches, already in memory, in turn (order alternating each round):

* ``timm, plain step``: timm's model; forward, cross-entropy, ``backward``, ``AdamW.step``;
* ``mtdsl, plain step``: mtdsl's model with that same plain step (the model's own cost);
* ``mtdsl, mtdsl step``: mtdsl's model with the step as the generated ``train.py``
  does it (learning-rate schedule, autocast + ``GradScaler``, weighting, the
  non-finite check, the per-task loss read-out; see ``train_step_overhead.py``).

All use random initialisation, the same precision (``precision = auto``: float32
on the CPU, autocast on a GPU, where the plain steps autocast to the same dtype)
and AdamW with the same learning rate and weight decay. It prints the median
ms/step of each and the throughput ratio to timm's (goal: mtdsl step ≥ 0.97×).

    .venv/bin/python benchmarks/train_step_vs_timm.py [--model tf_efficientnet_lite0] [--device cuda]
        [--batch 16] [--size 128] [--classes 102] [--runs 22] [--warmup 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import timm
import torch
from _timing import check_runs, machine_line, median_ms, side_by_side, spread
from torch import nn

from mtdsl.compiler import compile_text
from mtdsl.nn.losses import build_loss
from mtdsl.nn.model import MultiTaskModel
from mtdsl.spec.training import CosineScheduleConfig
from mtdsl.train.loop.optimizer import build_optimizer, set_learning_rate
from mtdsl.train.loop.precision import resolve_precision
from mtdsl.train.loop.runtime import stop_on_non_finite
from mtdsl.train.loop.schedule import LearningRate
from mtdsl.train.loop.weighting import build_weighting

TASK = "label"
SPEC = """
model single
input 3x{size}x{size}
backbone trunk = timm("{model}")
dataset d = synthetic()
task {task}: classify(d) {{ classes = {classes} }}
train {{
    batch_size = {batch}
    optimizer  = adamw(lr = 0.001, weight_decay = 0.01)
    precision  = auto
}}
"""


def make_batches(count: int, batch: int, size: int, classes: int, device: torch.device) -> list[tuple]:
    generator = torch.Generator().manual_seed(0)
    return [
        (torch.randn(batch, 3, size, size, generator=generator).to(device),
         torch.randint(0, classes, (batch,), generator=generator).to(device))
        for _ in range(count)
    ]


class PlainStep:
    """The step a timm user writes: forward, loss, backward, AdamW; autocast and a scaler only where mtdsl uses them."""

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, precision, device: torch.device,
                 mtdsl_outputs: bool) -> None:
        self.model = model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.loss = nn.CrossEntropyLoss()
        self.precision = precision
        self.device = device
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision.needs_scaler)
        self.mtdsl_outputs = mtdsl_outputs  # mtdsl's model returns {task: logits}

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        with torch.autocast(self.device.type, dtype=self.precision.dtype, enabled=self.precision.autocast):
            logits = self.model(images)
            if self.mtdsl_outputs:
                logits = logits[TASK]
            loss = self.loss(logits.float(), labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()


class MtdslStep:
    """The step of the generated training loop (``codegen/templates/train_loop.py``), data loading left out."""

    def __init__(self, model: nn.Module, spec, precision, device: torch.device) -> None:
        self.model = model
        self.loss = build_loss(spec.train.tasks[TASK].loss)
        self.weighting = build_weighting(spec.train.weighting, {TASK: spec.train.tasks[TASK].weight}).to(device)
        self.optimizer = build_optimizer(spec.train.optimizer, model, self.weighting)
        self.precision = precision
        self.device = device
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision.needs_scaler)
        self.schedule = LearningRate(CosineScheduleConfig(), spec.train.optimizer.lr, epochs=1)
        self.step = 0

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        set_learning_rate(self.optimizer, self.schedule.at(self.step / 1000))
        with torch.autocast(self.device.type, dtype=self.precision.dtype, enabled=self.precision.autocast):
            outputs = self.model(images, tasks=[TASK])
            losses = {TASK: self.loss(outputs[TASK].float(), labels)}
        total = self.weighting(losses)
        values = {task: loss.item() for task, loss in losses.items()}
        stop_on_non_finite(values, epoch=1, step=self.step, checkpoint=Path("unused"))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tf_efficientnet_lite0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--classes", type=int, default=102)
    parser.add_argument("--runs", type=int, default=22, help="timed steps per contender")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per contender first")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)

    compilation = compile_text(SPEC.format(size=args.size, model=args.model, task=TASK, classes=args.classes,
                                           batch=args.batch), "single.mtl")
    spec = compilation.spec
    precision = resolve_precision(spec.train.precision, device)
    optimizer = spec.train.optimizer
    timm_model = timm.create_model(args.model, num_classes=args.classes).to(device).train()
    mtdsl_plain_model = MultiTaskModel(compilation.graph, load_pretrained=False).to(device).train()
    mtdsl_model = MultiTaskModel(compilation.graph, load_pretrained=False).to(device).train()
    steps = {
        "timm, plain step": PlainStep(timm_model, optimizer.lr, optimizer.weight_decay, precision, device, False),
        "mtdsl, plain step": PlainStep(mtdsl_plain_model, optimizer.lr, optimizer.weight_decay, precision, device,
                                       True),
        "mtdsl, mtdsl step": MtdslStep(mtdsl_model, spec, precision, device),
    }
    batches = make_batches(args.warmup + args.runs, args.batch, args.size, args.classes, device)
    times = side_by_side({name: (lambda i, step=step: step(*batches[i])) for name, step in steps.items()},
                         args.runs, warmup=args.warmup, device=device)

    print(machine_line(device))
    check_runs(args.runs)
    print(f"{args.model}, {args.classes} classes, batch {args.batch}, {args.size}x{args.size}, device {device}, "
          f"precision {precision.name}, AdamW; median of {args.runs} steps after {args.warmup} warm-up, interleaved")
    print(f"parameters: timm {parameters(timm_model):,}, mtdsl {parameters(mtdsl_model):,}")
    timm_ms = median_ms(times["timm, plain step"])
    print(f"{'contender':<20} {'ms/step':>9} {'images/s':>9} {'p25–p75':>17}  throughput vs timm")
    for name, seconds in times.items():
        ms = median_ms(seconds)
        print(f"{name:<20} {ms:9.1f} {args.batch / ms * 1e3:9.1f} {spread(seconds):>17}  {timm_ms / ms:5.3f}x")
    ratio = timm_ms / median_ms(times["mtdsl, mtdsl step"])
    verdict = "met" if ratio >= 0.97 else "MISSED"
    print(f"throughput mtdsl step / timm plain step: {ratio:.3f}x (goal ≥ 0.97x: {verdict})")


if __name__ == "__main__":
    main()
