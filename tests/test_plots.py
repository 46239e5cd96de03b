"""Run outputs: training plots, the results table and files, and the metrics log."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from mtdsl.render.plots import plot_run
from mtdsl.train.run.report import MetricsLog, results_markdown, results_table, write_results

PLOTS = ["losses.png", "metrics.png", "sampling.png", "gradients.png"]


def run_records(epochs: int, with_val: bool = True) -> list[dict]:
    records: list[dict] = [{"event": "start", "spec": "demo"}]
    for epoch in range(1, epochs + 1):
        records.append({
            "event": "train", "epoch": epoch, "step": 40 * epoch, "phase": "heads" if epoch <= 2 else "all",
            "lr": 0.001, "losses": {"shape": 2.0 / epoch**2, "colour": 0.5 / epoch}, "seconds": 1.5,
            "ratios": {"shape+colour": 0.6, "large": 0.4} if epoch > 1 else {"shape+colour": 1.0},
            "backbone_gradient_norm": {} if epoch <= 2 else {"shape+colour": {"mean": 2.0, "max": 9.0 * epoch},
                                                             "large": {"mean": 0.5, "max": 0.7}},
        })  # fmt: skip
        if with_val:
            main = {"shape": 0.5 + 0.05 * epoch, "large": 0.9 - 0.03 * epoch}
            metrics = {task: {"accuracy": value} for task, value in main.items()}
            mean = sum(main.values()) / 2
            records.append({"event": "val", "epoch": epoch, "metrics": metrics, "main": main, "mean": mean})
    records.append({"event": "test", "metrics": {}, "main": {}, "mean": 0.7})
    return records


def assert_pngs(paths: list[Path], out_dir: Path) -> None:
    assert paths == [out_dir / name for name in PLOTS]
    for path in paths:
        assert path.stat().st_size > 0
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.width > 0 and image.height > 0


@pytest.mark.parametrize(
    "records",
    [
        run_records(6),
        run_records(1),
        run_records(3, with_val=False),
        [{"event": "val", "epoch": 1, "main": {"a": None}}],
    ],
    ids=["six-epochs", "one-epoch", "no-val", "no-train"],
)
def test_plot_run_writes_four_pngs(records: list[dict], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="plots need matplotlib (pip install matplotlib)")
    out_dir = tmp_path / "plots"
    assert_pngs(plot_run(iter(records), out_dir), out_dir)


def test_results_table_and_markdown() -> None:
    results = {"shape": {"accuracy": 0.9, "top5": 0.99}, "large": {"accuracy": 0.75, "balanced_accuracy": 0.8}}
    mains = {"shape": "accuracy", "large": "balanced_accuracy"}
    console = Console(width=200, record=True)
    console.print(results_table(results, mains, "test"))
    text = console.export_text()
    assert "mean (main)" in text and "0.8500" in text and "0.9900" in text
    markdown = results_markdown(results, mains)
    assert "| task | accuracy | top5 | balanced_accuracy | main |" in markdown
    assert "| large | 0.7500 |  | **0.8000** | **0.8000** |" in markdown
    assert markdown.splitlines()[-1] == "| mean (main) |  |  |  | **0.8500** |"


def test_write_results(tmp_path: Path) -> None:
    results = {"shape": {"accuracy": 0.123456789, "top5": math.nan}, "large": {"balanced_accuracy": 0.5}}
    mains = {"shape": "accuracy", "large": "balanced_accuracy"}
    paths = write_results(results, mains, tmp_path / "test")
    assert paths == [tmp_path / "test.json", tmp_path / "test.md"]
    saved = json.loads(paths[0].read_text())
    assert saved["metrics"]["shape"] == {"accuracy": 0.123456789, "top5": None}
    assert saved["main"] == {"shape": 0.123456789, "large": 0.5}
    assert saved["mean"] == pytest.approx((0.123456789 + 0.5) / 2)
    assert "**0.1235**" in paths[1].read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.json", "test.md"]  # no temporaries left


def test_metrics_log_round_trip_and_truncate(tmp_path: Path) -> None:
    path = tmp_path / "run" / "metrics.jsonl"
    log = MetricsLog(path)
    records = run_records(4)
    for record in records:
        log.append(record)
    assert MetricsLog.read(path) == records
    log.truncate_after(2)
    kept = MetricsLog.read(path)
    assert kept == [r for r in records if r["event"] == "start" or r.get("epoch", 99) <= 2]
    for record in records[len(kept) : -1]:  # the resumed run redoes epochs 3 and 4, then tests
        log.append(record)
    log.append(records[-1])
    assert MetricsLog.read(path) == records


def test_metrics_log_tolerates_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    MetricsLog(path).append({"event": "val", "epoch": 1, "mean": math.nan})
    with path.open("a") as file:
        file.write('{"event": "tra')
    assert MetricsLog.read(path) == [{"event": "val", "epoch": 1, "mean": None}]
    assert MetricsLog.read(tmp_path / "absent.jsonl") == []
