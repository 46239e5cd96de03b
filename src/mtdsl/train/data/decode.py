"""Image files → ``(3, H, W)`` uint8 tensors, upright (EXIF orientation applied), with torchvision's decoders.

JPEG, PNG and WebP files go through ``torchvision.io.decode_image`` (libjpeg-turbo,
libpng, libwebp: the same pixels as Pillow, without the round trip through a
``PIL.Image``). Other formats (BMP, TIFF, GIF, PPM …), and files torchvision
refuses, are opened with Pillow, whose error then names what is wrong with the
file. A JPEG at least twice as large as needed on its shorter side is decoded
smaller by Pillow's DCT scaling (``draft``), which saves most of the decode time
of a phone photo.

A phone stores a portrait photo as a landscape JPEG with an EXIF orientation
tag; every reader here turns it upright, so boxes and masks drawn on the upright
picture (what every viewer shows) stay on their pixels.

>>> import io
>>> from PIL import Image
>>> exif = Image.Exif()
>>> exif[ORIENTATION] = 6  # "rotate 90° clockwise to view"
>>> buffer = io.BytesIO()
>>> Image.new("RGB", (40, 30)).save(buffer, "JPEG", exif=exif)
>>> pixels, size = decode_bytes(buffer.getvalue())
>>> tuple(pixels.shape), size
((3, 40, 30), (30, 40))
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from mtdsl.train.data.transforms import as_rgb

__all__ = ["ORIENTATION", "decode_bytes", "oriented_size", "read_rgb", "to_tensor"]

#: The EXIF tag of the orientation; values 5–8 turn the picture a quarter, so width and height swap.
ORIENTATION = 0x0112
_QUARTER_TURNS = frozenset({5, 6, 7, 8})

_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"


def _torchvision_reads(data: bytes | bytearray) -> bool:
    # WebP too decodes in torchvision, but without its EXIF orientation: Pillow reads it upright.
    return data.startswith(_JPEG) or data.startswith(_PNG)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB ``PIL.Image`` as a ``(3, H, W)`` uint8 tensor (8-bit levels, see :func:`as_rgb`)."""
    return torch.from_numpy(np.array(as_rgb(image), dtype=np.uint8)).permute(2, 0, 1)


def _deep_to_8_bit(levels: torch.Tensor) -> torch.Tensor:
    """16-bit levels → 8-bit, ``value / 257`` rounded (as :func:`as_rgb` scales a 16-bit PNG read by Pillow)."""
    return ((levels.to(torch.int32) + 128) // 257).clamp_(0, 255).to(torch.uint8)


@lru_cache(maxsize=1)
def _torchvision_decoder() -> Callable[[torch.Tensor], torch.Tensor]:
    """``bytes tensor → (3, H, W)`` RGB, upright: torchvision's ``decode_image`` op.

    ``torchvision.io.decode_image`` checks its arguments and, since torchvision 0.29, warns
    that TorchCodec will take over image decoding, on every call: about a tenth of a
    small JPEG's decode time in ``warnings.warn`` alone. The op it then calls is the one
    called here, with the same arguments; where a torchvision lacks it, the public function is used.
    """
    from torchvision.io import ImageReadMode, decode_image

    rgb = ImageReadMode.RGB
    try:
        op = torch.ops.image.decode_image
    except (AttributeError, RuntimeError):
        return lambda data: decode_image(data, mode=rgb, apply_exif_orientation=True)
    return lambda data: op(data, rgb.value, True)


#: A JPEG start-of-frame marker (SOF0–SOF15 less DHT, JPG and DAC). Inside the compressed data a 0xFF byte is
#: always followed by 0x00, so only headers hold one; an EXIF thumbnail's comes first and reads small, which
#: only costs the draft's saving, never a picture (Pillow's draft never decodes below the size asked for).
_FRAME = re.compile(rb"\xff[\xc0-\xc3\xc5-\xc7\xc9-\xcb\xcd-\xcf]")


def _jpeg_size(data: bytes | bytearray) -> tuple[int, int] | None:
    """A JPEG's stored (width, height) from its first frame header (a regex scan: no Python loop per segment)."""
    found = _FRAME.search(data, 2)
    if found is None or found.start() + 9 > len(data):
        return None
    at = found.start()
    return int.from_bytes(data[at + 7 : at + 9], "big"), int.from_bytes(data[at + 5 : at + 7], "big")


def _upright(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in _QUARTER_TURNS else size


def _pillow(data: bytes | bytearray, draft: int | None) -> tuple[torch.Tensor, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as image:
        size = _upright(image.size, image.getexif().get(ORIENTATION, 1))
        if draft is not None and image.format == "JPEG":
            image.draft("RGB", (draft, draft))
        image.load()
        upright = ImageOps.exif_transpose(image)
        return to_tensor(upright), size


def decode_bytes(data: bytes | bytearray, draft: int | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
    """The picture in ``data`` as ``(3, H, W)`` uint8, upright, and the upright picture's full (width, height).

    The size differs from the tensor's only when ``draft`` shrank the decode.

    Args:
        data: the file's bytes.
        draft: the side the picture will be shrunk to, when it is: a JPEG at
            least twice that on its shorter side decodes at a power-of-two
            fraction of its size, never below ``draft``. ``None`` decodes full size.

    Raises:
        OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError: the bytes are not a readable image
            (see :data:`mtdsl.train.data.transforms.IMAGE_ERRORS`).
    """
    if _torchvision_reads(data):
        size = _jpeg_size(data) if draft is not None and data.startswith(_JPEG) else None
        if size is None or min(size) < 2 * draft:  # type: ignore[operator]
            try:
                pixels = _torchvision_decoder()(
                    torch.frombuffer(data if isinstance(data, bytearray) else bytearray(data), dtype=torch.uint8)
                )
            except RuntimeError:
                pass  # corrupt or unusual: Pillow reads it or says why not
            else:
                if pixels.dtype != torch.uint8:
                    pixels = _deep_to_8_bit(pixels)
                return pixels, (pixels.shape[-1], pixels.shape[-2])
    return _pillow(data, draft)


def read_rgb(path: str | Path, draft: int | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
    """The image file at ``path`` as ``(3, H, W)`` uint8, upright, and its full (width, height).

    See :func:`decode_bytes`.
    """
    with open(path, "rb") as file:  # read into a bytearray that torch.frombuffer shares: no copy of the file
        data = bytearray(os.fstat(file.fileno()).st_size)
        del data[file.readinto(data) :]  # in place: a file that shrank since fstat
    return decode_bytes(data, draft)


def oriented_size(path: str | Path) -> tuple[int, int]:
    """The (width, height) of the upright picture at ``path``, from its header alone."""
    with Image.open(path) as image:
        return _upright(image.size, image.getexif().get(ORIENTATION, 1))
