"""Forward-pass cost of mtdsl's compiled model against hand-written PyTorch, side by side.

Three implementations of the same three-task network (resnet18, one task
branching at stage3) are timed in one run on the same inputs:

* ``hand-written``: a timm backbone and heads wired by hand, the way the thesis did it;
* ``MultiTaskModel``: mtdsl's generic graph walk;
* ``model.py``: the source mtdsl generates.

It prints each one's median time per batch and its ratio to the hand-written one.

    .venv/bin/python benchmarks/forward_overhead.py [--device cuda] [--batch 32] [--size 224]
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import timm
import torch
from torch import nn

from mtdsl.codegen.model_source import generate_model_source
from mtdsl.compiler import compile_text

SPEC = """
model bench
input 3x{size}x{size}
backbone trunk = timm("resnet18")
dataset d = synthetic()
task a: classify(d) {{ classes = 10 }}
task b: classify(d) {{ classes = 5; branch = trunk.stage3 }}
task c: binary(d) {{ head = linear(pool = avg+max) }}
"""


class HandWritten(nn.Module):
    """What one writes without mtdsl: a shared trunk, a copied stage for b, three heads."""

    def __init__(self) -> None:
        super().__init__()
        net = timm.create_model("resnet18", num_classes=0)
        self.trunk = nn.Sequential(net.conv1, net.bn1, net.act1, net.maxpool, net.layer1, net.layer2, net.layer3)
        self.layer4 = net.layer4
        self.layer4_b = copy.deepcopy(net.layer4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head_a = nn.Linear(512, 10)
        self.head_b = nn.Linear(512, 5)
        self.head_c = nn.Linear(1024, 1)

    def forward(self, x):
        shared = self.trunk(x)
        top = self.layer4(shared)
        pooled = self.pool(top).flatten(1)
        both = torch.cat([pooled, torch.amax(top, dim=(2, 3))], dim=1)
        return {
            "a": self.head_a(pooled),
            "b": self.head_b(self.pool(self.layer4_b(shared)).flatten(1)),
            "c": self.head_c(both),
        }


def median_seconds(model: nn.Module, x: torch.Tensor, repeats: int) -> float:
    times = []
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        for _ in range(repeats):
            if x.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)

    compilation = compile_text(SPEC.format(size=args.size), "bench.mtl")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.py"
        path.write_text(generate_model_source(compilation.graph))
        module_spec = importlib.util.spec_from_file_location("bench_model", path)
        generated_module = importlib.util.module_from_spec(module_spec)
        sys.modules["bench_model"] = generated_module
        module_spec.loader.exec_module(generated_module)
        generated = generated_module.Model()

    models = {"hand-written": HandWritten(), "MultiTaskModel": compilation.model(), "model.py": generated}
    x = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    results = {name: median_seconds(m.to(args.device).eval(), x, args.repeats) for name, m in models.items()}
    baseline = results["hand-written"]
    print(f"forward, batch {args.batch}, {args.size}x{args.size}, {args.device}, median of {args.repeats}")
    for name, seconds in results.items():
        print(f"  {name:<15} {seconds * 1000:8.2f} ms   {seconds / baseline:5.2f}x hand-written")


if __name__ == "__main__":
    main()
