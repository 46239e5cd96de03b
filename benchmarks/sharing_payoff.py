"""The sharing payoff: one classify + detect + segment model against its three single-task models.

``benchmarks/specs/cls_det_seg.mtl`` puts a classifier, an EfficientDet head and a
segmentation head on one ``tf_efficientnet_lite0`` + BiFPN (64 channels, 3
repeats) at 256 px. :func:`mtdsl.compare.compare` derives each task's
single-task model (same backbone, neck and head, nothing shared) and measures
all four side by side: parameters, FLOPs, and forward latency at batch 1 and 8
(median of ``--runs`` interleaved passes after 3 warm-up passes each, random weights).

It prints the ratios multi-task / sum of the single-task models, the numbers
YOLOP-style papers report (YOLOP: 0.54x latency). Goals: parameters ≤ 0.4x,
latency ≤ 0.45x at batch 1 and at batch 8. Where batch 1 misses, it profiles the
multi-task model at batch 1: median time per graph node (forward hooks on
``model.node_module(node)``) and torch's top operators, so the docs can say what costs.

    .venv/bin/python benchmarks/sharing_payoff.py [--device cuda] [--runs 20] [--spec PATH] [--profile] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch
from _timing import check_runs, machine_line, synchronise

from mtdsl.compare import MULTI, compare
from mtdsl.compiler import compile_file
from mtdsl.graph.build import build_graph
from mtdsl.nn.model import MultiTaskModel
from mtdsl.nn.necks.bifpn import Fusion

SPEC = Path(__file__).resolve().parent / "specs" / "cls_det_seg.mtl"
BATCHES = (1, 8)
PARAMS_GOAL = 0.4
LATENCY_GOAL = 0.45


def verdict(ratio: float, goal: float) -> str:
    return "met" if ratio <= goal else "MISSED"


def print_comparison(result: dict) -> dict[int, float]:
    """The per-model table and the ratios; returns the latency ratio per batch size."""
    rows = result["rows"]
    header = f"{'model':<18} {'params':>11} {'GFLOPs':>8}" + "".join(f" {f'b{b} ms':>9}" for b in BATCHES)
    print(header)
    for name in [MULTI, *result["tasks"], "single-task total"]:
        row = rows[name]
        print(f"{name:<18} {row['params']:>11,} {row['flops'] / 1e9:8.2f}"
              + "".join(f" {row['latency_ms'][b]:9.1f}" for b in BATCHES))
    multi, total = rows[MULTI], rows["single-task total"]
    params = multi["params"] / total["params"]
    print(f"parameters multi / sum of singles: {params:.3f}x (goal ≤ {PARAMS_GOAL}x: {verdict(params, PARAMS_GOAL)})")
    print(f"FLOPs      multi / sum of singles: {multi['flops'] / total['flops']:.3f}x")
    ratios = {}
    for batch in BATCHES:
        ratios[batch] = multi["latency_ms"][batch] / total["latency_ms"][batch]
        print(f"latency    multi / sum of singles at batch {batch}: {ratios[batch]:.3f}x "
              f"(goal ≤ {LATENCY_GOAL}x: {verdict(ratios[batch], LATENCY_GOAL)})")
    return ratios


def node_times(model: MultiTaskModel, graph, image_size, device: torch.device, runs: int) -> dict[str, float]:
    """Median ms each graph node's module takes in a batch-1 forward pass (its own call, children included)."""
    times: dict[str, list[float]] = defaultdict(list)
    started: dict[str, float] = {}
    handles = []
    for node, data in graph.nodes(data=True):
        if data["kind"] == "input":
            continue
        module = model.node_module(node)

        def before(_module, _inputs, node=node):
            synchronise(device)
            started[node] = time.perf_counter()

        def after(_module, _inputs, _output, node=node):
            synchronise(device)
            times[node].append((time.perf_counter() - started[node]) * 1e3)

        handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    images = torch.randn(1, *image_size, device=device)
    with torch.inference_mode():
        for _ in range(3):
            model(images)
        times.clear()
        for _ in range(runs):
            model(images)
    for handle in handles:
        handle.remove()
    return {node: statistics.median(values) for node, values in times.items()}


def fusion_time(model: MultiTaskModel, image_size, device: torch.device, runs: int) -> tuple[float, int]:
    """Median ms per batch-1 pass spent in the BiFPN's weighted fusions (``Fusion`` modules), and how many run."""
    fusions = [module for module in model.modules() if isinstance(module, Fusion)]
    spent: list[float] = []
    started: list[float] = []

    def before(_module, _inputs):
        synchronise(device)
        started.append(time.perf_counter())

    def after(_module, _inputs, _output):
        synchronise(device)
        spent.append(time.perf_counter() - started.pop())

    handles = [handle for module in fusions
               for handle in (module.register_forward_pre_hook(before), module.register_forward_hook(after))]
    images = torch.randn(1, *image_size, device=device)
    per_pass = []
    with torch.inference_mode():
        for run in range(3 + runs):
            spent.clear()
            model(images)
            if run >= 3:
                per_pass.append(sum(spent) * 1e3)
    for handle in handles:
        handle.remove()
    return statistics.median(per_pass), len(fusions)


def profile_batch_one(spec, device: torch.device, runs: int) -> None:
    """Where the multi-task model's batch-1 time goes: per graph node, then torch's top operators."""
    graph = build_graph(spec)
    model = MultiTaskModel(graph, load_pretrained=False).to(device).eval()
    image_size = tuple(spec.model.input.size)
    per_node = node_times(model, graph, image_size, device, runs)
    whole = sum(per_node.values())
    print(f"\nprofile of the multi-task model at batch 1 (median of {runs} passes per graph node):")
    print(f"{'graph node':<28} {'kind':<8} {'ms':>7} {'share':>6}")
    for node, ms in sorted(per_node.items(), key=lambda item: -item[1]):
        print(f"{node:<28} {graph.nodes[node]['kind']:<8} {ms:7.2f} {ms / whole:6.1%}")
    print(f"{'sum of nodes':<28} {'':<8} {whole:7.2f}")
    fused, count = fusion_time(model, image_size, device, runs)
    print(f"of which the BiFPN's {count} weighted fusions (stack + sum): {fused:.2f} ms")
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    images = torch.randn(1, *image_size, device=device)
    with torch.inference_mode():
        model(images)
        with torch.profiler.profile(activities=activities) as profiler:
            for _ in range(5):
                model(images)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print("\ntop operators, 5 passes at batch 1:")
    print(profiler.key_averages().table(sort_by=sort, row_limit=10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=20, help="timed passes per model and batch size")
    parser.add_argument("--profile", action="store_true", help="profile batch 1 even when it meets its goal")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's); 1 resists a busy machine")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    spec = compile_file(args.spec).spec
    result = compare(spec, device=device, batch_sizes=BATCHES, runs=args.runs)
    print(machine_line(device))
    check_runs(args.runs)
    print(f"{args.spec.name}: {', '.join(f'{t} ({spec.model.tasks[t].kind})' for t in result['tasks'])}; "
          f"input {'x'.join(map(str, result['input']))}, device {device}, median of {args.runs} interleaved "
          "forward passes after 3 warm-up, random weights")
    ratios = print_comparison(result)
    if ratios[1] > LATENCY_GOAL or args.profile:
        profile_batch_one(spec, device, args.runs)


if __name__ == "__main__":
    main()
