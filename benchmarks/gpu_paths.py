"""The CUDA paths of the generated loop, each trained for real: fp32, fp16 + GradScaler, bf16, channels_last, compile.

Each variant trains the same spec (``specs/quickstart.mtl`` by default: five
tasks, classify to segment, on synthetic data) from the same seed for
``--epochs`` epochs through ``mtdsl train``'s own path, into
``OUT/<variant>``, and is judged on what it wrote: every epoch's losses finite,
the summed loss lower in the last epoch than in the first, and throughput as
training images per second of training time (validation excluded). One table
and ``OUT/gpu_paths.json`` at the end; exit status 1 if any variant fails.

    .venv/bin/python benchmarks/gpu_paths.py --device cuda --out /tmp/gpu-paths
    .venv/bin/python benchmarks/gpu_paths.py --device cpu --variants fp32,bf16 --epochs 2   # a CPU smoke run

``tests/test_gpu.py`` (marked ``gpu``) runs it with two epochs on a CUDA device.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from mtdsl.compiler import compile_text
from mtdsl.launch import train_compiled
from mtdsl.train.run.folder import RunFolder
from mtdsl.train.run.report import MetricsLog

ROOT = Path(__file__).resolve().parents[1]

#: Variant → the train-block settings it adds.
VARIANTS = {
    "fp32": "precision = fp32",
    "fp16": "precision = fp16",  # autocast float16 + GradScaler
    "bf16": "precision = bf16",
    "fp16+channels_last": "precision = fp16; channels_last = true",
    "fp16+compile": "precision = fp16; compile = true",
}


def variant_spec(text: str, settings: str, epochs: int) -> str:
    """``text`` with its phases replaced by one of ``epochs`` epochs and ``settings`` replacing its own."""
    body = re.sub(r"\n\s*phase\s+\w+\s*\{[^}]*\}", "", text)
    body = re.sub(r"\b(precision|channels_last|compile)\s*=\s*[^;\n]+;?", "", body)
    return re.sub(r"train\s*\{", f"train {{\n    {settings}\n    phase all {{ epochs = {epochs} }}", body, count=1)


def run_variant(name: str, text: str, out: Path, device: str, seed: int, quiet: bool) -> dict:
    compilation = compile_text(text, f"gpu_paths/{name}.mtl")
    run = RunFolder(out / name)
    train_compiled(compilation, run, resume=False, overwrite=True, seed=seed, device=device, workers=None,
                   quiet=quiet, keep_spec=True, announce=lambda line: None)
    epochs = [r for r in MetricsLog.read(run.metrics) if r["event"] == "train"]
    losses = [sum(r["losses"].values()) for r in epochs]
    images = sum(max(r["images"].values()) for r in epochs)  # exact for one-stream specs such as the quickstart
    seconds = sum(r["seconds"] for r in epochs)
    finite = all(math.isfinite(value) for value in losses)
    return {"variant": name, "losses": losses, "finite": finite, "falling": finite and losses[-1] < losses[0],
            "images_per_second": images / seconds if seconds else None, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "specs" / "quickstart.mtl")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/gpu-paths"))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    import torch

    where = torch.cuda.get_device_name() if args.device.startswith("cuda") and torch.cuda.is_available() else "CPU"
    print(f"{args.spec.name}, {args.epochs} epochs per variant, device {args.device} ({where}), "
          f"torch {torch.__version__}")
    text = args.spec.read_text(encoding="utf-8")
    results = []
    for name in args.variants.split(","):
        results.append(run_variant(name, variant_spec(text, VARIANTS[name], args.epochs), args.out, args.device,
                                   args.seed, args.quiet))
        r = results[-1]
        print(f"{name:20s} images/s {r['images_per_second']:9.1f}   loss {r['losses'][0]:.3f} → {r['losses'][-1]:.3f}"
              f"   finite {'yes' if r['finite'] else 'NO'}   falling {'yes' if r['falling'] else 'NO'}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_paths.json").write_text(json.dumps({"device": where, "results": results}, indent=1) + "\n")
    return 0 if all(r["falling"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
