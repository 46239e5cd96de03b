"""Data loaders for every stream: endless ones for training, finite ones for evaluation.

Each dataset is read once (:func:`mtdsl.train.data.datasets.read_splits`) and shared by
the streams that use it; a stream of several datasets joins their splits
(:func:`mtdsl.train.data.datasets.join_datasets`). A training loader draws its batches from
:mod:`mtdsl.train.data.batching`, so the ``k``-th batch of a stream is fixed by the
seed alone; :attr:`StreamLoaders.consumed` (saved in checkpoints) is all it
takes to continue exactly where a run stopped.
"""

from __future__ import annotations

import atexit
import functools
import math
import multiprocessing.util  # noqa: F401  registers multiprocessing's exit handler before any StreamLoaders' own
import warnings
import weakref
from collections.abc import Iterator, Mapping, Sequence

import torch
from rich.markup import escape
from torch.utils.data import DataLoader

from mtdsl.errors import DataError, DataWarning, listing
from mtdsl.spec.data import DatasetConfig, SyntheticDataset, resize_policy
from mtdsl.spec.streams import Stream
from mtdsl.train.data.batching import BalancedBatches, RankShare, ShuffledBatches
from mtdsl.train.data.datasets import Examples, ImageDataset, collate, join_datasets, raise_if_unreadable, read_splits
from mtdsl.train.data.joint import labelled_counts, merge_by_photo
from mtdsl.train.data.resize import Resize
from mtdsl.train.data.shared_photos import check_shared_photos, photos_trained_twice
from mtdsl.train.data.sources import describe
from mtdsl.train.data.tasks import TaskLabels
from mtdsl.train.parallel.world import World
from mtdsl.train.run.stop_signals import ignore_stop_signals


class StreamLoaders:
    """Args:
    streams: the spec's streams.
    datasets: dataset configs by name.
    labels: what each task reads from its dataset.
    image_size: ``(height, width)`` fed to the model.
    mean, std: input normalisation.
    seed: the run's seed; stream ``i`` draws from ``seed + i``.
    workers: loader worker processes per stream.
    on_corrupt: ``"error"`` or ``"skip"``.
    device: where batches go.
    consumed: batches each stream has already delivered (from a checkpoint).
    resize: interpolation and evaluation crop (:func:`~mtdsl.train.data.resize.pretrained_resize`).
    world: the run's processes; each rank loads its share of every global batch
        (:class:`~mtdsl.train.data.batching.RankShare`) and of every evaluation split.
    """

    def __init__(
        self,
        streams: Sequence[Stream],
        datasets: Mapping[str, DatasetConfig],
        labels: Mapping[str, TaskLabels],
        *,
        image_size: tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        seed: int,
        workers: int,
        on_corrupt: str,
        device: torch.device,
        consumed: Sequence[int] | None = None,
        world: World | None = None,
        resize: Resize | None = None,
    ) -> None:
        self.streams = list(streams)
        self.world = world or World()
        self._may_skip = on_corrupt == "skip"
        self.device = device
        self.workers = workers
        self.consumed = list(consumed or [0] * len(streams))
        self.skipped = 0
        names = dict.fromkeys(name for stream in streams for name in stream.datasets)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataWarning)
            splits = {name: _read_dataset(name, datasets[name], [labels[t] for t in _tasks_of(streams, name)])
                      for name in names}
        check_shared_photos(splits, datasets)
        #: Datasets of different streams that train on the same photos, and how many (joint sampling's case).
        self.shared = ([], 0) if any(stream.joint for stream in streams) else photos_trained_twice(
            {name: parts for name, parts in splits.items() if not isinstance(datasets[name], SyntheticDataset)},
            [list(stream.datasets) for stream in streams])
        self.warnings = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
        for other in caught:
            if not issubclass(other.category, DataWarning):
                warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
        self.splits: dict[int, dict[str, ImageDataset]] = {}
        #: What is evaluated: per stream its tasks and splits; a joint stream's parts, each on its own splits.
        self.groups: list[tuple[Stream, dict[str, ImageDataset]]] = []
        #: Per stream, the share of its training examples that label each of its tasks (1 but in a joint stream).
        self.shares: list[dict[str, float]] = []
        for index, stream in enumerate(self.streams):
            build = functools.partial(
                _image_datasets, labels=labels, image_size=image_size, mean=tuple(mean), std=tuple(std),
                on_corrupt=on_corrupt, resize=resize,
                augment=datasets[stream.datasets[0]].augment if stream.augment is None else stream.augment,
            )
            if not stream.joint:
                self.splits[index] = build(stream, _stream_splits(stream, splits, labels),
                                           fit=datasets[stream.datasets[0]].resize)
                self._check_splits(stream, self.splits[index], {name: datasets[name] for name in stream.datasets},
                                   splits)
                self.groups.append((stream, self.splits[index]))
                self.shares.append(dict.fromkeys(stream.tasks, 1.0))
                continue
            # One view for every part, as the joint batches have it: letterboxed when any task is dense.
            fit = resize_policy(datasets[stream.datasets[0]], any(labels[t].dense for t in stream.tasks))
            for part in stream.parts:
                evaluated = build(part, _stream_splits(part, splits, labels), fit=fit)
                self._check_splits(part, evaluated, {name: datasets[name] for name in part.datasets}, splits,
                                   batch_size=False)
                self.groups.append((part, evaluated))
            merged = merge_by_photo({name: splits[name]["train"] for name in stream.datasets},
                                    {name: _tasks_of([stream], name) for name in stream.datasets},
                                    [labels[t] for t in stream.tasks])
            self.splits[index] = build(stream, {"train": merged}, fit=fit)
            self._check_splits(stream, self.splits[index], {name: datasets[name] for name in stream.datasets},
                               splits, nonempty=False)
            self.shares.append({task: count / len(merged) for task, count in
                                labelled_counts(merged, [labels[t] for t in stream.tasks]).items()})
        self._seed = seed
        self._iterators: dict[int, Iterator[dict]] = {}
        # atexit runs last-registered first, so this runs before multiprocessing's handler (see close).
        atexit.register(functools.partial(_close_if_alive, weakref.ref(self)))

    def close(self) -> None:
        """Stop the training streams' loader workers now; a stream's next batch starts them again.

        The workers ignore SIGTERM (:func:`~mtdsl.train.run.stop_signals.ignore_stop_signals`), and at
        interpreter exit multiprocessing sends its daemonic children SIGTERM and then joins them, so
        workers still running then would keep the process waiting for ever. Loaders that are still
        referenced at exit are therefore closed first: on specs/real/pets.mtl, matplotlib's pyparsing
        cached a traceback through the training loop's frames, and ``mtdsl train`` hung after its results.
        """
        for iterator in self._iterators.values():
            shutdown = getattr(iterator, "_shutdown_workers", None)  # none without workers
            if shutdown is not None:
                shutdown()  # what torch's iterator runs when it is freed
        self._iterators.clear()

    def describe(self) -> list[str]:
        """A line per stream: ``heads+coco → objects: 338 train · 85 val``, then a line per data warning.

        Warnings (:class:`~mtdsl.errors.DataWarning`, e.g. an empty class
        folder) are rich markup, ``[yellow]warning:[/] …``, for the loop's console.
        """
        lines = []
        for index, stream in enumerate(self.streams):
            if stream.joint:
                photos = len(self.splits[index]["train"])
                labelled = " · ".join(f"{task} {round(share * photos)}" for task, share in self.shares[index].items())
                lines.append(f"joint {stream.dataset} → {', '.join(stream.tasks)}: {photos} training photos "
                             f"({labelled})")
                continue
            balanced = " (balanced)" if stream.balanced else ""
            lines.append(f"{stream.dataset} → {', '.join(stream.tasks)}{balanced}: {_counts(self.splits[index])}")
        for part, evaluated in self.groups:
            if part not in self.streams:
                lines.append(f"  {part.dataset} → {', '.join(part.tasks)}: {_counts(evaluated)}")
        names, photos = self.shared
        if photos:
            lines.append(f"note: datasets {listing(names)} label {photos} of the same training photos, and each stream "
                         "passes them through the backbone: `sampling = joint` passes each photo once for every task "
                         "that labels it (docs/training.md, \"Joint sampling\")")
        return lines + [f"[yellow]warning:[/] {escape(message)}" for message in self.warnings]

    def _check_splits(
        self, stream: Stream, evaluated: Mapping[str, ImageDataset], configs: Mapping[str, DatasetConfig],
        splits: Mapping[str, Mapping[str, Examples]], *, nonempty: bool = True, batch_size: bool = True,
    ) -> None:
        """Refuse, before any step, a stream that cannot train a whole epoch as its spec asks.

        ``evaluated``: the stream's splits as datasets. ``nonempty`` checks its training and validation splits,
        ``batch_size`` its batch size (a joint stream's parts are checked for the first, the stream for the second).

        Raises:
            DataError: its training or validation split is empty (every epoch
                validates), or its batch size exceeds its training examples
                (an endless sampler would otherwise fill memory with a batch
                that cannot be drawn without repeats).
        """
        sizes = "; ".join(
            f"{describe(configs[name])}: " + " · ".join(f"{len(part)} {split}" for split, part in splits[name].items())
            for name in stream.datasets
        )
        source = f"dataset '{stream.dataset}'" if len(stream.datasets) == 1 else (
            "datasets " + " + ".join(f"'{name}'" for name in stream.datasets) + " joined")
        for split, meaning in (("train", "training"), ("val", "validation")) if nonempty else ():
            if len(evaluated.get(split, ())) == 0:
                raise DataError(
                    f"{source} (tasks {', '.join(stream.tasks)}) has no {meaning} examples: {sizes}",
                    expected=f"at least one {meaning} example"
                    + ("; every epoch is validated" if split == "val" else ""),
                    hint="; ".join(_fill_hint(configs[name], split) for name in stream.datasets
                                   if len(splits[name].get(split, ())) == 0),
                )
        if not batch_size:
            return
        ranks = self.world.size
        if stream.batch_size % ranks:
            raise DataError(
                f"the batch size of {source} (tasks {', '.join(stream.tasks)}) is {stream.batch_size}, "
                f"which {ranks} processes cannot share evenly",
                expected=f"a batch size that is a multiple of {ranks}: each process takes an equal share of a batch",
                hint=f"write batch_size = {max(ranks, stream.batch_size // ranks * ranks)}, or launch "
                f"a number of processes that divides {stream.batch_size}",
            )
        training = len(evaluated["train"])
        if stream.batch_size > training:
            raise DataError(
                f"{source} (tasks {', '.join(stream.tasks)}) has {training} training examples, "
                f"fewer than its batch size of {stream.batch_size}: {sizes}",
                expected=f"a batch size of at most {training}, the stream's training examples",
                hint=f"write batch_size = {training} or less (in the train block, and on the tasks "
                f"{', '.join(stream.tasks)} where they set their own), or give the stream more training examples",
            )

    @property
    def sizes(self) -> list[int]:
        """Training examples per stream."""
        return [len(self.splits[i]["train"]) for i in range(len(self.streams))]

    def _batches(self, index: int) -> ShuffledBatches | RankShare:
        stream = self.streams[index]
        dataset = self.splits[index]["train"]
        seed = self._seed + index
        if stream.balanced is not None:
            targets = dataset.targets(stream.balanced)
            known = targets[~torch.isnan(targets)]  # unknown (nan) examples are drawn on neither side
            if known.sum() == 0 or known.sum() == len(known):
                side = "positive" if known.sum() == 0 else "negative"
                raise DataError(
                    f"task '{stream.balanced}' has no {side} training example in dataset '{stream.dataset}', "
                    "so its batches cannot be balanced",
                    hint="check its `positive` label, or set balanced = false on the task",
                )
            batches: BalancedBatches | ShuffledBatches = BalancedBatches(
                targets, stream.batch_size, seed, start=self.consumed[index])
        else:
            batches = ShuffledBatches(len(dataset), stream.batch_size, seed, start=self.consumed[index])
        return RankShare(batches, self.world.rank, self.world.size) if self.world.distributed else batches

    def _loader(self, dataset: ImageDataset, index: int, **kwargs) -> DataLoader:
        """A loader that never draws from the global RNG.

        A DataLoader draws its workers' base seed when an iterator starts, from
        ``generator`` or else from the global RNG. Training iterators start lazily,
        at a stream's first batch, so drawing from the global RNG would shift the
        dropout and drop-path masks of every later step by when the stream was
        first used, which differs after a resume. Augmentation has its own seeds
        (:mod:`mtdsl.train.data.batching`), so this seed only names the workers.
        """
        on_gpu = self.device.type == "cuda"
        return DataLoader(
            dataset, collate_fn=collate, num_workers=self.workers, pin_memory=on_gpu,
            persistent_workers=on_gpu and self.workers > 0, worker_init_fn=ignore_stop_signals,
            generator=torch.Generator().manual_seed((self._seed + index) % 2**63), **kwargs,
        )

    def next_batch(self, index: int) -> dict:
        """The stream's next training batch, on the device.

        With ``on_corrupt = skip``, a batch left with fewer than two readable images is passed over
        (BatchNorm cannot normalise one image whose features are 1×1), unless the batch holds one
        image anyway. With several ranks a batch is passed over when any rank's share of it is, so
        every rank stays at the same global batch.
        """
        if index not in self._iterators:
            self._iterators[index] = iter(
                self._loader(self.splits[index]["train"], index, batch_sampler=self._batches(index))
            )
        while True:
            batch = raise_if_unreadable(next(self._iterators[index]))
            self.consumed[index] += 1
            self.skipped += batch["skipped"]
            usable = len(batch["index"]) >= min(2, self.streams[index].batch_size // self.world.size)
            if self.world.distributed and self._may_skip:
                usable = self.world.all(usable)
            if usable:
                return to_device(batch, self.device)

    def split_for(self, index: int, split: str, fallback: str | None = None) -> str | None:
        """The split evaluation group ``index`` (of :attr:`groups`) is evaluated on: ``split``, else ``fallback``
        when it lacks ``split``."""
        return _split_of(self.groups[index][1], split, fallback)

    def splits_by_task(self, split: str, fallback: str | None = None) -> dict[str, str | None]:
        """The split each task is evaluated on (:meth:`split_for` of its group)."""
        return {task: self.split_for(index, split, fallback) for index, (group, _) in enumerate(self.groups)
                for task in group.tasks}

    def evaluation(self, split: str, fallback: str | None = None) -> Iterator[tuple[Stream, DataLoader]]:
        """For each evaluation group with this split (or else ``fallback``): its stream and a finite loader over
        it. A joint stream is evaluated part by part, each task on its own datasets' split.

        With several ranks, each loads every ``ranks``-th batch of the split, from its own rank on.
        """
        for index, (group, evaluated) in enumerate(self.groups):
            chosen = _split_of(evaluated, split, fallback)
            if chosen is None:
                continue
            dataset = evaluated[chosen].for_evaluation()
            indices = [[(i, 0) for i in range(start, min(start + group.batch_size, len(dataset)))]
                       for start in range(0, len(dataset), group.batch_size)]
            yield group, self._loader(dataset, index, batch_sampler=indices[self.world.rank :: self.world.size])

    def has_split(self, split: str) -> bool:
        return any(split in splits and len(splits[split]) for _, splits in self.groups)


def _split_of(splits: Mapping[str, ImageDataset], split: str, fallback: str | None) -> str | None:
    for name in (split, fallback):
        dataset = splits.get(name) if name else None
        if dataset is not None and len(dataset):
            return name
    return None


def _counts(splits: Mapping[str, ImageDataset]) -> str:
    return " · ".join(f"{len(dataset)} {split}" for split, dataset in splits.items())


def _image_datasets(stream: Stream, examples: Mapping[str, Examples], *, labels: Mapping[str, TaskLabels],
                    fit: str | None, **options) -> dict[str, ImageDataset]:
    """The stream's splits as datasets of its tasks (the training split augmented)."""
    return {split: ImageDataset(part, [labels[t] for t in stream.tasks], train=split == "train", fit=fit, **options)
            for split, part in examples.items()}


def _close_if_alive(loaders: weakref.ref[StreamLoaders]) -> None:
    alive = loaders()
    if alive is not None:
        alive.close()


def _fill_hint(config: DatasetConfig, split: str) -> str:
    """How to give ``config``'s ``split`` (``train`` or ``val``) an example."""
    where = describe(config)
    ratios = getattr(config, "split", "given")
    if isinstance(ratios, str):  # "given": the dataset's own folders
        return f"put images in the {split}/ folder of {where}"
    shown = "/".join(f"{ratio:g}" for ratio in ratios)
    share = ratios[0 if split == "train" else 1]
    if share == 0:
        return f"give {split} a share of {where}'s split = {shown}, e.g. split = 0.8/0.2"
    # ratio_split rounds cumulative shares, so a part of share r holds an example once count * r >= 1.
    needed = math.ceil(1 / share)
    if isinstance(config, SyntheticDataset):
        return f"raise {where}'s count = {config.count} to {needed} or more, or {split}'s share of split = {shown}"
    return f"give {where} {needed} or more images, or raise {split}'s share of split = {shown}"


def _read_dataset(name: str, config: DatasetConfig, tasks: list[TaskLabels]) -> dict[str, Examples]:
    """:func:`read_splits`; a :class:`DataError` it raises names the dataset (``error.dataset``), to be located."""
    try:
        return read_splits(config, tasks)
    except DataError as error:
        error.dataset = name
        raise


def _tasks_of(streams: Sequence[Stream], dataset: str) -> list[str]:
    """The tasks that read ``dataset``: a joint stream's parts each read their own datasets only."""
    return [task for stream in streams for part in (stream.parts or (stream,)) if dataset in part.datasets
            for task in part.tasks]


def _stream_splits(
    stream: Stream, splits: Mapping[str, dict[str, Examples]], labels: Mapping[str, TaskLabels]
) -> dict[str, Examples]:
    if len(stream.datasets) == 1:
        return splits[stream.datasets[0]]
    return join_datasets({name: splits[name] for name in stream.datasets}, [labels[t] for t in stream.tasks])


def to_device(batch: dict, device: torch.device) -> dict:
    """The batch with its image and targets on ``device``; a detect task's lists of boxes go tensor by tensor."""
    non_blocking = device.type == "cuda"

    def move(value):
        if isinstance(value, torch.Tensor):
            return value.to(device, non_blocking=non_blocking)
        if isinstance(value, dict):
            return {key: move(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [move(item) for item in value]
        return value

    return {
        "image": move(batch["image"]),
        "targets": move(batch["targets"]),
        "index": batch["index"],
        "skipped": batch["skipped"],
    }
