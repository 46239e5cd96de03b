"""Mean ± standard deviation over seeds of `mtdsl compare --train` results, as a markdown table.

    python experiments/table.py \
        --compare proportional runs/exp/plants/seed0 runs/exp/plants/seed1 runs/exp/plants/seed2 \
        --compare fixed runs/exp/plants_fixed/seed0 ... \
        --timm flowers runs/exp/timm/flowers-seed0.json ... --timm bean_health runs/exp/timm/beans-seed0.json ...

Each ``--compare VARIANT DIR...`` adds two rows: the multi-task model and the
single-task models, each task's main test metric (val where a dataset has no
test split) over the seeds in the DIRs' ``compare.json``; also the parameters
and the images each task saw. Each ``--timm TASK FILE...`` fills a task's cell
of a reference row from ``experiments/timm_finetune.py``'s JSON results;
``--timm VARIANT:TASK FILE...`` fills a second reference row named VARIANT.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def mean_spread(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f} (1 seed)"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def compare_rows(variant: str, folders: list[Path]) -> tuple[list[str], list[dict]]:
    results = [json.loads((folder / "compare.json").read_text()) for folder in folders]
    tasks = results[0]["tasks"]
    multi, single = defaultdict(list), defaultdict(list)
    images_multi, images_single, seconds_multi, seconds_single = defaultdict(list), defaultdict(list), [], []
    for result in results:
        runs = result["training"]["runs"]
        seconds_multi.append(runs["multi-task"]["seconds"])
        seconds_single.append(sum(runs[task]["seconds"] for task in tasks))
        for task in tasks:
            multi[task].append(runs["multi-task"]["metrics"][task]["value"])
            single[task].append(runs[task]["metrics"][task]["value"])
            images_multi[task].append(runs["multi-task"]["images"][task])
            images_single[task].append(runs[task]["images"][task])
    rows = result["rows"]
    split = {task: results[0]["training"]["runs"]["multi-task"]["metrics"][task]["split"] for task in tasks}
    return tasks, [
        {"row": f"{variant}: multi-task", "cells": {t: mean_spread(multi[t]) for t in tasks},
         "params": rows["multi-task"]["params"], "images": {t: statistics.mean(images_multi[t]) for t in tasks},
         "seconds": statistics.mean(seconds_multi), "seeds": len(results), "split": split},
        {"row": f"{variant}: single-task", "cells": {t: mean_spread(single[t]) for t in tasks},
         "params": rows["single-task total"]["params"], "images": {t: statistics.mean(images_single[t]) for t in tasks},
         "seconds": statistics.mean(seconds_single), "seeds": len(results), "split": split},
    ]


def timm_row(tasks: list[str], files: dict[str, list[Path]], variant: str = "") -> dict:
    cells, images, seconds = {}, {}, 0.0
    for task in tasks:
        results = [json.loads(path.read_text()) for path in files.get(task, [])]
        cells[task] = mean_spread([r["accuracy"] for r in results])
        images[task] = statistics.mean(r["images_seen"] for r in results) if results else 0
        seconds += statistics.mean(r["seconds"] for r in results) if results else 0
    name = "plain timm + torchvision fine-tune" + (f", {variant}" if variant else "")
    return {"row": name, "cells": cells, "params": None, "images": images,
            "seconds": seconds, "seeds": max(len(v) for v in files.values()), "split": {}}


def markdown(tasks: list[str], rows: list[dict]) -> str:
    split = next(row["split"] for row in rows if row["split"])
    head = ["model", *(f"{t} ({split.get(t) or 'n/a'})" for t in tasks), "parameters", "images seen per task",
            "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        images = ", ".join(f"{row['images'][t]:,.0f}" for t in tasks)
        params = "–" if row["params"] is None else f"{row['params'] / 1e6:.2f}M"
        lines.append("| " + " | ".join([row["row"], *(row["cells"][t] for t in tasks), params, images,
                                         f"{row['seconds']:.0f}"]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", nargs="+", action="append", default=[], metavar="VARIANT DIR",
                        help="a variant name, then the compare --out folders of its seeds")
    parser.add_argument("--timm", nargs="+", action="append", default=[], metavar="TASK FILE",
                        help="a task name (VARIANT:TASK for a second reference row), "
                             "then experiments/timm_finetune.py result files of its seeds")
    args = parser.parse_args()
    tasks, rows = [], []
    for variant, *folders in args.compare:
        tasks, variant_rows = compare_rows(variant, [Path(f) for f in folders])
        rows += variant_rows
    references: dict[str, dict[str, list[Path]]] = defaultdict(dict)
    for name, *files in args.timm:
        variant, _, task = name.rpartition(":")
        references[variant][task] = [Path(f) for f in files]
    rows += [timm_row(tasks, files, variant) for variant, files in references.items()]
    print(markdown(tasks, rows))


if __name__ == "__main__":
    main()
