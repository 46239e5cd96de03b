"""Every vision transformer timm has that mtdsl cuts between blocks, run against timm's ``forward_intermediates``.

For every architecture of timm's ``vision_transformer``, ``vision_transformer_hybrid``,
``eva`` and ``beit`` modules, it reads what mtdsl reads (on the meta device) and,
for each one that is cut, builds it two blocks deep (``depth=2``, every other
setting its own: width, patch, prefix tokens, rotary or relative position
embeddings) with random weights at its own input size, runs its first two
segments (and ``pre_logits``) on one image and checks that the map each one
gives a neck or a head (``TokenSegment.as_map``) equals timm's
``forward_intermediates`` for that block. It prints every difference or
failure, then the totals and the refusals with their reasons.

    MTDSL_CACHE_DIR= OMP_NUM_THREADS=1 PYTHONPATH=src taskset -c 1 .venv/bin/python benchmarks/vit_sweep.py
"""

from __future__ import annotations

import argparse
import collections
import time

import timm
import torch
from _timing import machine_line

from mtdsl.graph.backbones import BackboneInfo, read_backbone
from mtdsl.nn.backbone import create_timm_model, segments_of

FAMILIES = ("vision_transformer", "vision_transformer_hybrid", "eva", "beit")
RUN = ("stage1", "stage2", "pre_logits")


def maps_equal_timms(name: str, info: BackboneInfo) -> bool:
    torch.manual_seed(0)
    model = create_timm_model(name, depth=2).eval()
    side = info.data.input_size[1]
    images = torch.randn(1, 3, side, side)
    with torch.no_grad():
        expected = model.forward_intermediates(images, intermediates_only=True)
        x, maps = images, []
        for segment in segments_of(model, [s for s in info.names if s in RUN]).values():
            x = segment(x)
            maps.append(segment.as_map(x, images.shape[-2:]))
    return all(got.shape == want.shape and torch.allclose(got, want, rtol=1e-4, atol=1e-4)
               for got, want in zip(maps, expected))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pattern", default="*", help="timm.list_models pattern (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    modules = timm.models._registry._model_to_module
    names = [name for name in timm.list_models(args.pattern) if modules.get(name) in FAMILIES]
    counts: collections.Counter[str] = collections.Counter()
    refusals: dict[str, list[str]] = collections.defaultdict(list)
    start = time.perf_counter()
    for name in names:
        info = read_backbone(name)
        if info.refusal:
            refusals[info.refusal].append(name)
            continue
        try:
            verdict = "equal" if maps_equal_timms(name, info) else "differs"
        except Exception as error:  # a model that fails to run: the sweep reports it
            verdict = "failed"
            print(f"{name}: failed: {type(error).__name__}: {(str(error).splitlines() or [''])[0][:100]}")
        if verdict == "differs":
            print(f"{name}: differs from timm's forward_intermediates")
        counts[verdict] += 1
    print(machine_line())
    cut = sum(counts.values())
    print(f"timm {timm.__version__}: {len(names)} architectures of {', '.join(FAMILIES)} in "
          f"{time.perf_counter() - start:.0f} s; cut {cut}, refused {len(names) - cut}; "
          f"maps equal to timm's forward_intermediates: {counts['equal']} of {cut} "
          f"({counts['differs']} differ, {counts['failed']} failed to run)")
    for reason, refused in sorted(refusals.items(), key=lambda item: -len(item[1])):
        print(f"refused {len(refused)}: {reason} (e.g. {', '.join(refused[:3])})")


if __name__ == "__main__":
    main()
