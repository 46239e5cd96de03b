"""Decoded + augmented images per second for one worker, and the share of a training step spent waiting for data.

Part 1, one worker: the training split of each real dataset in
``../shared/data`` (flowers102, beans; one class folder per label, read with
``read_splits`` from a ``folder`` dataset) goes image by image, in this
process with one torch thread (what one DataLoader worker gets), through

* ``mtdsl``: ``ImageDataset(train=True)[index, seed]``: ``torchvision.io``
  decode with EXIF orientation, the default ``augment`` (``crop`` = v2
  ``RandomResizedCrop``, scale 0.5–1, aspect 3/4–4/3, antialiased; ``flip``)
  run from the item's seed, normalise in one fused multiply-add;
* ``torchvision``: ``decode_jpeg(read_file(path))``, then ``transforms.v2``
  ``RandomResizedCrop`` (same scale and ratio, bilinear, antialiased) +
  ``RandomHorizontalFlip`` + ``ToDtype(float32, scale=True)`` + ``Normalize``;

on the same files at the same output size (160 and 224 px). The two take turns
on chunks of ``--chunk`` images (order alternating), ``--runs`` timed chunks
after 2 warm-up chunks; it prints the median images/s of each and the ratio
mtdsl / torchvision (goal ≥ 1.0x: the same code path). Where a ratio misses, it profiles both
pipelines (cProfile) on the dataset and size with the lowest ratio.

Part 2, a real run: ``mtdsl``'s generated loop trains a flowers102 spec
(``test_resnet`` at 160 px by default, 1 epoch, 2 workers) in this process,
with ``StreamLoaders.next_batch`` wrapped by a timer. The share of the training
steps' wall time spent inside ``next_batch`` is the time waiting for data
(goal < 5%); it is given with and without the first batch, which also starts the workers.

    .venv/bin/python benchmarks/data_loading.py [--data ../shared/data] [--runs 20] [--chunk 16]
        [--sizes 160 224] [--train-backbone test_resnet] [--train-size 160] [--workers 2] [--skip-train]
        [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _timing import check_runs, machine_line, side_by_side
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms import v2

from mtdsl.compiler import compile_file, write_artefacts, write_model_source, write_train_source
from mtdsl.spec.augment import Crop
from mtdsl.spec.data import FolderDataset
from mtdsl.train.data.datasets import ImageDataset, normalization, read_splits
from mtdsl.train.data.loaders import StreamLoaders
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.loop.runtime import load_generated

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"flowers102": 102, "beans": 3}  # folder under --data → classes
WAIT_GOAL = 0.05
RATE_GOAL = 1.0

TRAIN_SPEC = """
model data_wait
input 3x{size}x{size}
backbone trunk = timm("{backbone}")
dataset flowers = folder("{data}/flowers102/images", split = given)
task flower: classify(flowers) {{ classes = 102 }}
train {{
    epochs = 1
    batch_size = {batch}
    workers = {workers}
    optimizer = adamw(lr = 0.001)
}}
"""


def mtdsl_dataset(root: Path, classes: int, size: int) -> ImageDataset:
    labels = [TaskLabels("label", "classify", classes)]
    splits = read_splits(FolderDataset(root=str(root / "images"), split="given"), labels)
    mean, std = normalization("tf_efficientnet_lite0")
    return ImageDataset(splits["train"], labels, image_size=(size, size), mean=mean, std=std, train=True)


def torchvision_pipeline(size: int) -> v2.Compose:
    crop = Crop()  # mtdsl's default crop ranges
    mean, std = normalization("tf_efficientnet_lite0")
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=tuple(crop.scale), ratio=tuple(crop.ratio), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
    ])


def pipelines(dataset: ImageDataset, size: int, chunk: int, chunks: int) -> dict:
    """``{"mtdsl": work, "torchvision": work}``: ``work(index)`` makes chunk ``index``'s images (the same files)."""
    paths = [str(path) for path in dataset.examples.images]
    transform = torchvision_pipeline(size)
    start = [(index * chunk) % len(paths) for index in range(chunks)]

    def ours(index: int) -> None:
        for offset in range(chunk):
            item = dataset[(start[index] + offset) % len(paths), index]
            assert item["image"].shape == (3, size, size)

    def theirs(index: int) -> None:
        for offset in range(chunk):
            image = transform(decode_jpeg(read_file(paths[(start[index] + offset) % len(paths)]),
                                          mode=ImageReadMode.RGB))
            assert image.shape == (3, size, size)

    return {"mtdsl": ours, "torchvision": theirs}


def images_per_second(dataset: ImageDataset, size: int, chunk: int, runs: int) -> dict[str, float]:
    """Median images/s of each pipeline over ``runs`` chunks, the chunks taken in turn by both."""
    warmup = 2
    times = side_by_side(pipelines(dataset, size, chunk, warmup + runs), runs, warmup=warmup)
    return {name: chunk / statistics.median(seconds) for name, seconds in times.items()}


def profile_pipelines(dataset: ImageDataset, size: int, chunk: int, chunks: int, rows: int = 8) -> None:
    """cProfile of both pipelines on the same ``chunks * chunk`` images: the functions that take the time."""
    for name, work in pipelines(dataset, size, chunk, chunks).items():
        profiler = cProfile.Profile()
        profiler.enable()
        for index in range(chunks):
            work(index)
        profiler.disable()
        report = io.StringIO()
        stats = pstats.Stats(profiler, stream=report)
        stats.sort_stats("tottime").print_stats(rows)
        lines = [line for line in report.getvalue().splitlines() if line.strip()]
        table = lines[next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")):]
        print(f"  {name}: {chunks * chunk} images, {stats.total_tt:.2f} s in all; top {rows} by own time")
        for line in table:
            print(f"    {line.replace(str(ROOT), '.')}")


def loading_rates(data: Path, sizes: list[int], chunk: int, runs: int, profile: bool) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what one DataLoader worker runs with
    print(f"\npart 1: one worker (in-process, 1 torch thread), training split, median of {runs} chunks of "
          f"{chunk} images after 2 warm-up chunks, A/B interleaved")
    print(f"{'dataset':<11} {'size':>5} {'images':>7} {'mtdsl img/s':>12} {'torchvision img/s':>18} {'ratio':>7}")
    worst = None
    for name, classes in DATASETS.items():
        if not (data / name).is_dir():
            print(f"{name:<11} skipped: {data / name} is absent")
            continue
        for size in sizes:
            dataset = mtdsl_dataset(data / name, classes, size)
            rates = images_per_second(dataset, size, chunk, runs)
            ratio = rates["mtdsl"] / rates["torchvision"]
            if worst is None or ratio < worst[0]:
                worst = (ratio, name, size, dataset)
            goal = "met" if ratio >= RATE_GOAL else "MISSED"
            print(f"{name:<11} {size:>5} {len(dataset):>7} {rates['mtdsl']:12.1f} {rates['torchvision']:18.1f} "
                  f"{ratio:6.2f}x  (goal ≥ {RATE_GOAL}x: {goal})")
    if worst is not None and (worst[0] < RATE_GOAL or profile):
        ratio, name, size, dataset = worst
        print(f"\nprofile of the lowest ratio, {name} at {size} px ({ratio:.2f}x):")
        profile_pipelines(dataset, size, chunk, chunks=runs)
    torch.set_num_threads(threads)


class BatchWaits:
    """Wraps ``StreamLoaders.next_batch``: when each call started and how long it took."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.waits: list[float] = []
        self.original = StreamLoaders.next_batch

    def __enter__(self) -> BatchWaits:
        original = self.original

        def timed(loaders: StreamLoaders, index: int) -> dict:
            started = time.perf_counter()
            batch = original(loaders, index)
            self.starts.append(started)
            self.waits.append(time.perf_counter() - started)
            return batch

        StreamLoaders.next_batch = timed
        return self

    def __exit__(self, *exc_info) -> None:
        StreamLoaders.next_batch = self.original

    def share(self, first: int) -> tuple[float, float, int]:
        """Waiting seconds / step seconds over steps ``first`` … n-2 (the last step's end is not seen)."""
        steps = len(self.starts) - 1
        wall = self.starts[-1] - self.starts[first]
        waited = sum(self.waits[first:steps])
        return waited / wall, wall, steps - first


def training_wait(data: Path, backbone: str, size: int, batch: int, workers: int) -> None:
    if not (data / "flowers102").is_dir():
        print(f"\npart 2 skipped: {data / 'flowers102'} is absent")
        return
    with tempfile.TemporaryDirectory() as folder:
        spec_path = Path(folder) / "data_wait.mtl"
        spec_path.write_text(TRAIN_SPEC.format(size=size, backbone=backbone, data=data.resolve(), batch=batch,
                                               workers=workers))
        run = Path(folder) / "run"
        write_artefacts(compile_file(spec_path), run, (write_model_source, write_train_source))
        loop = load_generated(run / "train.py")
        started = time.perf_counter()
        with BatchWaits() as waits:
            loop.train(run, overwrite=True, device="cpu", workers=workers, quiet=True)
        total = time.perf_counter() - started
    print(f"\npart 2: mtdsl's generated loop, flowers102 train split, {backbone} at {size} px, batch {batch}, "
          f"{workers} workers, 1 epoch, AdamW, CPU ({total:.0f} s with validation and test)")
    for first, label in ((0, "all steps"), (1, "without the first batch (worker start-up)")):
        share, wall, steps = waits.share(first)
        goal = "met" if share < WAIT_GOAL else "MISSED"
        print(f"  {label}: {steps} steps, {wall:.1f} s, {share:.1%} waiting in next_batch (goal < 5%: {goal})")
    print(f"  first batch waited {waits.waits[0]:.2f} s; median wait after it "
          f"{statistics.median(waits.waits[1:]) * 1e3:.1f} ms, median step "
          f"{statistics.median(b - a for a, b in zip(waits.starts, waits.starts[1:])) * 1e3:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--runs", type=int, default=20, help="timed chunks per pipeline, dataset and size")
    parser.add_argument("--chunk", type=int, default=16, help="images per timed chunk")
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 224])
    parser.add_argument("--train-backbone", default="test_resnet")
    parser.add_argument("--train-size", type=int, default=160)
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-train", action="store_true", help="part 1 only")
    parser.add_argument("--profile", action="store_true", help="profile part 1 even when it meets its goal")
    args = parser.parse_args()
    print(machine_line())
    check_runs(args.runs)
    if not args.data.is_dir():
        print(f"skipped: {args.data} is absent (the real datasets, see its README)")
        return
    loading_rates(args.data, args.sizes, args.chunk, args.runs, args.profile)
    if not args.skip_train:
        training_wait(args.data, args.train_backbone, args.train_size, args.train_batch, args.workers)


if __name__ == "__main__":
    main()
