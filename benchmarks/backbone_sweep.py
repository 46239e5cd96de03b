"""Which timm families mtdsl can cut into segments: every architecture read, the smallest of each family run.

For every name in ``timm.list_models()`` the script reads what mtdsl reads
(:func:`mtdsl.graph.backbones.backbone_info`, on the meta device: no weights,
no compute; kept in mtdsl's cache, so a rerun reads the file) and sorts it:
cut into segments (with the layout its stages hold: ``NCHW``, ``NHWC`` or a
ViT's ``NLC`` tokens), run whole (timm's ``features_only`` extractor in the
first segment), or refused with timm's reason. Then, for each family with a
model that is cut (else one that runs whole), it builds the family's smallest
model (by parameter count) with random weights and checks on the CPU that
every segment outputs the feature map timm's own forward pass produces at
that tap (the oracle of ``tests/test_backbone_families.py``; for a model run
whole, its ``features_only`` extractor's maps on the same weights, as in
``tests/test_whole_backbones.py``), at 64×64 or the model's fixed size.

It prints a markdown table per family and the totals, and with ``--json``
writes every record. Reading all of timm takes about 2 s per architecture on
one core (two builds on the meta device), 45 minutes for all of them; pass
``--pattern`` to sweep fewer, or ``--per-family`` to read only the first
architecture of each timm module (its family), and run it only when it has
under ``--run-limit`` parameters.

    PYTHONPATH=src OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python benchmarks/backbone_sweep.py --json sweep.json
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import timm
import torch
from _timing import machine_line

from mtdsl.errors import BackboneError
from mtdsl.graph.backbones import BackboneInfo, backbone_info
from mtdsl.nn.backbone import create_timm_model, segments_of, timm_segments


def read_all(names: list[str]) -> list[BackboneInfo]:
    infos = []
    for index, name in enumerate(names):
        if index % 100 == 0:
            print(f"read {index} of {len(names)}", file=sys.stderr, flush=True)
        try:
            infos.append(backbone_info(name))  # timm's answer, kept in mtdsl's cache: a rerun reads the file
        except BackboneError as error:  # timm cannot build it at all (on the meta device)
            infos.append(BackboneInfo(name, timm.models._registry._model_to_module.get(name, ""), (),
                                      refusal=f"not built: {error.message}"))
    return infos


def segments_match_timm(name: str, info: BackboneInfo) -> str:
    """``"equal"`` when every segment outputs timm's feature map at its tap, else what differs.

    At 64×64 (the model's own size where timm fixes it), or at its pretrained size where 64 is too small for it.
    """
    torch.manual_seed(0)
    model = (timm.create_model(name, features_only=True) if info.whole else create_timm_model(name)).eval()
    sides = [info.data.input_size[1]] if info.data.fixed_input_size else [64, info.data.input_size[1]]
    for side in sides:
        verdict = _compare(model, info, torch.randn(1, 3, side, side))
        if not verdict.startswith("failed to run"):
            return verdict if side == 64 or info.data.fixed_input_size else f"{verdict} at {side}x{side}"
    return verdict


def _compare_whole(extractor: torch.nn.Module, info: BackboneInfo, images: torch.Tensor) -> str:
    """A model run whole: what a reader of each segment gets, against timm's extractor on the same weights."""
    segments = timm_segments(info.model).eval()
    segments[info.names[0]].extractor.load_state_dict(extractor.state_dict())
    try:
        with torch.no_grad():
            maps = extractor(images)
            x, outputs = images, []
            for segment in segments.values():
                x = segment(x)
                outputs.append(segment.as_map(x, images.shape[-2:]))
    except Exception as error:  # a model that fails to run at this size: the sweep reports it
        first = (str(error).splitlines() or [""])[0][:80]
        return f"failed to run: {type(error).__name__}: {first}"
    if info.layout == "NHWC":
        maps = [m.permute(0, 3, 1, 2) for m in maps]
    for stage, want, got in zip(info.stages, maps, outputs):
        if got.shape != want.shape or not torch.equal(got, want):
            return f"{stage.name} differs"
    return "equal"


def _compare(model: torch.nn.Module, info: BackboneInfo, images: torch.Tensor) -> str:
    if info.whole:
        return _compare_whole(model, info, images)
    maps: list[torch.Tensor] = []
    hooks = [model.get_submodule(tap["module"]).register_forward_hook(lambda _m, _i, out: maps.append(out))
             for tap in model.feature_info]
    try:
        with torch.no_grad():
            model.forward_features(images)
            x, outputs = images, []
            for segment in segments_of(model, info.names).values():
                x = segment(x)  # a ViT's segments hand on tokens: what a neck or head reads is their map
                outputs.append(segment.as_map(x, images.shape[-2:]) if info.layout == "NLC" else x)
    except Exception as error:  # a model that fails to run at this size: the sweep reports it
        first = (str(error).splitlines() or [""])[0][:80]
        return f"failed to run: {type(error).__name__}: {first}"
    finally:
        for hook in hooks:
            hook.remove()
    if info.layout == "NHWC":
        maps = [m.permute(0, 3, 1, 2) for m in maps]
    if info.layout == "NLC":  # timm's blocks hand on tokens: its maps are forward_intermediates'
        with torch.no_grad():
            maps = model.forward_intermediates(images, intermediates_only=True)
    for stage, want, got in zip(info.stages, maps, outputs):
        if not isinstance(got, torch.Tensor):
            return f"{stage.name} outputs a {type(got).__name__}, not a map"
        if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
            return f"{stage.name} differs"
    return "equal"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pattern", default="*", help="timm.list_models pattern (default: all)")
    parser.add_argument("--json", type=Path, help="write every record here")
    parser.add_argument("--no-run", action="store_true", help="skip running each family's smallest model")
    parser.add_argument("--per-family", action="store_true",
                        help="read only the first architecture of each timm module matching --pattern")
    parser.add_argument("--run-limit", type=float, default=60e6,
                        help="run a family's smallest model only below this many parameters (default 60e6)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = timm.list_models(args.pattern)
    if args.per_family:
        first: dict[str, str] = {}
        for name in names:
            first.setdefault(timm.models._registry._model_to_module.get(name, "?"), name)
        names = sorted(first.values())
    start = time.perf_counter()
    infos = read_all(names)
    read_seconds = time.perf_counter() - start
    families: dict[str, list[BackboneInfo]] = collections.defaultdict(list)
    for info in infos:
        families[info.family or "?"].append(info)
    checks = {}
    rows = []
    for family, members in sorted(families.items()):
        cut = [m for m in members if not m.refusal and not m.whole]
        whole = [m for m in members if m.whole]
        reasons = collections.Counter(m.refusal.split(" (")[0] for m in members if m.refusal)
        smallest = min(cut or whole, key=lambda m: sum(s.parameters for s in m.segments), default=None)
        size = sum(s.parameters for s in smallest.segments) if smallest is not None else 0
        if smallest is not None and not args.no_run and size < args.run_limit:
            checks[smallest.model] = segments_match_timm(smallest.model, smallest)
        elif smallest is not None:
            checks[smallest.model] = f"not run ({size / 1e6:.0f}M parameters)"
        rows.append((family, len(members), len(cut), len(whole), ", ".join(sorted({m.layout for m in cut})) or "-",
                     f"{smallest.model}: {checks.get(smallest.model, 'not run')}" if smallest else "-",
                     "; ".join(f"{n}× {r}" for r, n in reasons.most_common()) or "-"))
    print(machine_line())
    what = "the first architecture of each family" if args.per_family else "architectures"
    print(f"timm {timm.__version__}: {len(infos)} {what} (pattern {args.pattern!r}) read in {read_seconds:.0f} s")
    print()
    print("| family | architectures | cut | run whole | layout | smallest, segments vs timm | refused: why |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    cut_total = sum(not info.refusal and not info.whole for info in infos)
    whole_total = sum(info.whole for info in infos)
    tags = timm.list_pretrained(args.pattern if "." in args.pattern else args.pattern + ".*")
    cut_names = {info.model for info in infos if not info.refusal and not info.whole}
    cut_tags = sum(tag.partition(".")[0] in cut_names for tag in tags)
    print()
    tag_count = "" if args.per_family else f"; pretrained tags of cut architectures: {cut_tags} of {len(tags)}"
    ran = [verdict for verdict in checks.values() if not verdict.startswith("not run")]
    equal = sum(verdict.startswith("equal") for verdict in ran)
    print(f"cut: {cut_total} of {len(infos)} architectures, in {sum(r[2] > 0 for r in rows)} of {len(rows)} "
          f"families{tag_count}; run whole: {whole_total} (in {sum(r[3] > 0 for r in rows)} families); refused: "
          f"{len(infos) - cut_total - whole_total}; smallest per family equal to timm: {equal} of {len(ran)} run")
    if args.json:
        args.json.write_text(json.dumps({"records": [info.to_record() for info in infos], "checks": checks},
                                        indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
