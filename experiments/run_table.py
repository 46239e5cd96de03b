"""Mean ± standard deviation over seeds of one task's test metrics from `mtdsl train` run folders, as markdown.

    python experiments/run_table.py road miou iou/Road iou/Car \
        --run "full + partial" runs/partial/joined_s0 runs/partial/joined_s1 \
        --run "full alone" runs/partial/full_s0 runs/partial/full_s1

Each ``--run ROW DIR...`` adds a row: every named metric of TASK from the
DIRs' ``test.json`` (the test split, or val where the data has none), then the
optimiser steps and the training seconds (without validation) from their
``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def mean_spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f} (1 seed)"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def row(name: str, folders: list[Path], task: str, metrics: list[str]) -> str:
    found = [json.loads((folder / "test.json").read_text())["metrics"][task] for folder in folders]
    cells = [mean_spread([result[metric] for result in found]) for metric in metrics]
    epochs = [[json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()] for folder in folders]
    epochs = [[record for record in records if record["event"] == "train"] for records in epochs]
    steps = {records[-1]["step"] for records in epochs}
    seconds = [sum(record["seconds"] for record in records) for records in epochs]
    cells += [", ".join(map(str, sorted(steps))), f"{statistics.mean(seconds):.0f}"]
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task")
    parser.add_argument("metrics", nargs="+")
    parser.add_argument("--run", nargs="+", action="append", required=True, metavar=("ROW", "DIR"))
    args = parser.parse_args()
    print("| run | " + " | ".join(args.metrics) + " | steps | training seconds (mean) |")
    print("|---|" + "---|" * (len(args.metrics) + 2))
    for name, *folders in args.run:
        print(row(name, [Path(folder) for folder in folders], args.task, args.metrics))


if __name__ == "__main__":
    main()
