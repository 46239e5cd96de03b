"""Checking a ``mtdsl predict`` request before any model is built: its tasks, the model's input, the images."""

from __future__ import annotations

import stat
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageOps

from mtdsl.errors import ArtefactError, DataError, SpecNameError, SpecValueError, did_you_mean, listing
from mtdsl.spec.document import Spec
from mtdsl.train.data.sources import IMAGE_SUFFIXES, image_files, looping_link
from mtdsl.train.data.transforms import IMAGE_ERRORS, as_rgb

__all__ = ["check_input", "collect_images", "read_image", "requested_tasks"]

IMAGE_HINT = f"pass image files ({', '.join(sorted(IMAGE_SUFFIXES))}) or folders holding them"


def requested_tasks(spec: Spec, tasks: str | Iterable[str] | None) -> list[str]:
    """The tasks to run in spec order (all when ``None``); ``"a,b"`` is split on commas.

    Raises:
        SpecNameError: a name is not a task of the spec.
    """
    known = list(spec.model.tasks)
    if tasks is None:
        return known
    names = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t.strip()]
    for name in names:
        if name not in spec.model.tasks:
            raise SpecNameError(
                f"--tasks {name}: spec '{spec.name}' has no task '{name}'",
                expected=f"tasks of the spec, comma-separated: {listing(known)}",
                hint=did_you_mean(name, known),
            )
    if not names:
        raise SpecNameError("--tasks names no task", expected=f"tasks of the spec, comma-separated: {listing(known)}")
    return [t for t in known if t in names]


def check_input(spec: Spec) -> None:
    """The input must be RGB (a checked spec already has a square one when it has detect or segment tasks).

    Raises:
        SpecValueError: pointing at the spec's ``input`` line.
    """
    size = spec.model.input
    if size.channels != 3:
        raise SpecValueError(
            f"predict reads RGB images, but the model's input has {size.channels} channels",
            spec.span("input"), source=spec.source, expected=f"input 3x{size.height}x{size.width}",
        )


def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """Image files, with each folder replaced by its image files (by name, not recursive).

    Each file's header is read, so a missing or non-image file fails here, before any model
    is built.

    Raises:
        ArtefactError: a path does not exist, a folder holds no images, or a file is not an
            image PIL can open.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        files += _listed(path)
    if not files:
        raise ArtefactError("no images to predict on", hint=IMAGE_HINT)
    for file in files:
        try:
            with Image.open(file):
                pass
        except IMAGE_ERRORS as error:
            raise _unreadable(file, error) from None
    return files


def _listed(path: Path) -> list[Path]:
    """``path``, or the image files of the folder it names.

    A symbolic link that loops is refused as training refuses it (:func:`~mtdsl.train.data.sources.image_files`),
    never skipped: pathlib's ``is_file`` and ``is_dir`` read a loop as "not there".
    """
    try:
        if not stat.S_ISDIR(path.stat().st_mode):
            return [path]
        found = [Path(file) for file in image_files(path, "predict")]
    except DataError as error:
        raise ArtefactError(error.message, expected=error.expected, hint=error.hint) from None
    except (FileNotFoundError, NotADirectoryError):
        raise ArtefactError(f"no image at {path}", hint=f"check the path; {IMAGE_HINT}") from None
    except OSError as error:
        looping = looping_link(path, "predict", error)
        raise ArtefactError(looping.message, expected=looping.expected, hint=looping.hint) from None
    if not found:
        raise ArtefactError(f"the folder {path} holds no images", expected=IMAGE_HINT)
    return found


def _unreadable(file: Path, error: BaseException) -> ArtefactError:
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return ArtefactError(f"cannot read the image {file}: {reason}", hint=f"remove it from the list; {IMAGE_HINT}")


def read_image(file: Path) -> Image.Image:
    """The image at ``file`` as RGB, upright (EXIF orientation applied, as training reads it)."""
    try:
        with Image.open(file) as image:
            return as_rgb(ImageOps.exif_transpose(image))
    except IMAGE_ERRORS as error:
        raise _unreadable(file, error) from None
