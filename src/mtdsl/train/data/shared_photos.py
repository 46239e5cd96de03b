"""Photos that several datasets of one spec label must sit in the same split of each.

A multi-task model trains its shared layers on every task's training photos.
When a photo is in one dataset's training split and another's validation or
test split, the model has seen the second task's held-out photo, and its
numbers cannot be compared with a single-task model's (which has not). Ratio
splits of files are drawn by photo (:func:`~mtdsl.train.data.sources.photo_split`),
so this holds whenever datasets share their ratios and seed; what is left
(given split folders, a CSV's split column, different ratios or seeds) is
refused here, before any training.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mtdsl.errors import DataError
from mtdsl.spec.data import DatasetConfig, SyntheticDataset
from mtdsl.train.data.examples import Examples

__all__ = ["check_shared_photos", "photos_trained_twice"]

HELD_OUT = ("val", "test")


def check_shared_photos(splits: Mapping[str, Mapping[str, Examples]], datasets: Mapping[str, DatasetConfig]) -> None:
    """Raise :class:`DataError` (naming the dataset) when a photo one dataset trains on another holds out.

    ``splits``: per dataset name, its ``train``/``val``/``test`` examples.
    """
    trained = {name: _photos(parts.get("train")) for name, parts in splits.items()
               if not isinstance(datasets[name], SyntheticDataset)}
    for held_name, parts in splits.items():
        if held_name not in trained:
            continue
        for split in HELD_OUT:
            held = _photos(parts.get(split))
            for train_name, photos in trained.items():
                leaked = sorted(held & photos) if train_name != held_name else []
                if leaked:
                    raise _leak(held_name, split, train_name, leaked, len(held), datasets)


def photos_trained_twice(splits: Mapping[str, Mapping[str, Examples]],
                         streams: list[list[str]]) -> tuple[list[str], int]:
    """The datasets whose training photos another stream's dataset also trains on, and how many such photos.

    ``streams``: each stream's dataset names. Each stream passes its photos through the backbone, so a
    photo that two streams train on costs two passes where ``sampling = joint`` would take one.
    """
    stream_of = {name: index for index, names in enumerate(streams) for name in names}
    trained = {name: _photos(parts.get("train")) for name, parts in splits.items() if name in stream_of}
    streams_of_photo: dict[str, set[int]] = {}
    for name, photos in trained.items():
        for photo in photos:
            streams_of_photo.setdefault(photo, set()).add(stream_of[name])
    twice = {photo for photo, owners in streams_of_photo.items() if len(owners) > 1}
    return [name for name, photos in trained.items() if photos & twice], len(twice)


def _photos(examples: Examples | None) -> set[str]:
    return set() if examples is None else {os.path.normpath(str(image)) for image in examples.images}


def _leak(held_name: str, split: str, train_name: str, leaked: list[str], held: int,
          datasets: Mapping[str, DatasetConfig]) -> DataError:
    splits = {str(getattr(datasets[name], "split", None)) for name in (held_name, train_name)}
    seeds = {getattr(datasets[name], "seed", None) for name in (held_name, train_name)}
    if len(splits) > 1 or len(seeds) > 1 or "given" in splits:
        hint = (f"give '{held_name}' and '{train_name}' the same split (the same ratios and seed, or the same "
                "split folders or column)")
    else:
        hint = f"split '{held_name}' and '{train_name}' alike, or train them in separate specs"
    error = DataError(
        f"{len(leaked)} of the {held} {split} photos of dataset '{held_name}' are training photos of dataset "
        f"'{train_name}' (e.g. {os.path.basename(leaked[0])}): the shared layers would learn from photos held out "
        f"for '{held_name}', and its {split} numbers would not be comparable with a single-task model's",
        expected="each photo in the same split of every dataset that labels it",
        hint=hint,
    )
    error.dataset = held_name
    return error
