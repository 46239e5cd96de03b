"""One training step in two processes: mtdsl's DDP per stream against one DDP with ``find_unused_parameters``.

A multi-task step trains one stream's tasks, so the other tasks' parameters get
no gradient. Plain DDP cannot train such a model; the stock remedy,
``DistributedDataParallel(model, find_unused_parameters=True)``, walks the
autograd graph after every forward to find them. mtdsl instead builds one DDP
per stream over just the parameters that stream reaches
(:mod:`mtdsl.train.parallel.replicas`). This script times both on the same model
and the same steps, side by side in the same two gloo processes (CPU), and
prints the median step time of each and their ratio.

The model has three tasks in two streams (``shape`` and ``colour`` on one
dataset, a balanced binary ``large`` on its own stream, reading ``stage3``).

    .venv/bin/python benchmarks/distributed_step.py [--backbone resnet18] [--batch 32] [--size 96] [--steps 30]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _timing import check_runs, machine_line, median_ms, side_by_side, spread
from torch.nn.parallel import DistributedDataParallel

from mtdsl.compiler import compile_text
from mtdsl.nn.model import MultiTaskModel
from mtdsl.train.parallel.replicas import StreamReplicas
from mtdsl.train.parallel.world import World

SPEC = """
model two_streams
input 3x{size}x{size}
backbone trunk = timm("{backbone}")
dataset shapes = synthetic(count = 256, size = {size}, seed = 0)
task shape: classify(shapes) {{ classes = [circle, square, triangle] }}
task colour: classify(shapes) {{ classes = [red, green, blue]; branch = trunk.stage3 }}
task large: binary(shapes) {{ tap = trunk.stage3 }}
train {{ batch_size = {batch} }}
"""


def step(forward, model: torch.nn.Module, optimizer, images: torch.Tensor, tasks: tuple[str, ...]) -> None:
    outputs = forward(images, tasks)
    loss = sum(outputs[task].float().square().mean() for task in tasks)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def run(rank: int, args: argparse.Namespace, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(args.threads)
    world = World.from_environment()
    compilation = compile_text(SPEC.format(size=args.size, backbone=args.backbone, batch=args.batch), "bench.mtl")
    streams = compilation.spec.streams
    with world.joined(torch.device("cpu")):
        torch.manual_seed(0)
        ours = MultiTaskModel(compilation.graph, load_pretrained=False)
        stock = MultiTaskModel(compilation.graph, load_pretrained=False)
        stock.load_state_dict(ours.state_dict())
        replicas = StreamReplicas(ours, ours, streams, world, (args.size, args.size), torch.device("cpu"))
        replicas.prepare()
        wrapped = DistributedDataParallel(stock, find_unused_parameters=True)
        optimizers = {name: torch.optim.SGD(model.parameters(), lr=1e-3) for name, model in
                      (("per-stream DDP (mtdsl)", ours), ("find_unused_parameters", stock))}
        share = args.batch // 2
        images = torch.randn(share, 3, args.size, args.size, generator=torch.Generator().manual_seed(rank))

        def ours_step(index: int) -> None:
            stream = index % len(streams)
            step(lambda x, tasks: replicas(stream, x), ours, optimizers["per-stream DDP (mtdsl)"], images,
                 streams[stream].tasks)

        def stock_step(index: int) -> None:
            tasks = streams[index % len(streams)].tasks
            step(lambda x, tasks: wrapped(x, tasks=tasks), stock, optimizers["find_unused_parameters"], images, tasks)

        times = side_by_side({"per-stream DDP (mtdsl)": ours_step, "find_unused_parameters": stock_step},
                             args.steps, warmup=4)
        if world.is_main:
            print(machine_line())
            print(f"2 gloo processes × {args.threads} thread(s), {args.backbone} at {args.size} px, global batch "
                  f"{args.batch} ({share} per process), {len(streams)} streams taken in turn, {args.steps} steps each")
            for name, seconds in times.items():
                print(f"  {name:<24} median {median_ms(seconds):7.1f} ms/step  (p25–p75 {spread(seconds)})")
            ratio = statistics.median(times["find_unused_parameters"]) / statistics.median(
                times["per-stream DDP (mtdsl)"])
            print(f"  find_unused_parameters takes {ratio:.2f}× the time of mtdsl's per-stream DDP")
        dist.barrier()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--batch", type=int, default=32, help="global batch (each of the 2 processes takes half)")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = parser.parse_args()
    check_runs(args.steps)
    mp.spawn(run, args=(args, free_port()), nprocs=2, join=True)


if __name__ == "__main__":
    main()
