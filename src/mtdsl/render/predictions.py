"""Model predictions turned into files a person looks at: drawn images, a grid of them, COCO JSON.

* :func:`draw_predictions` draws boxes with their labels, and a segmentation mask blended
  over the image with a legend, onto a copy of the image;
* :func:`save_prediction_grid` tiles drawn images into one PNG (a run folder's "a few
  prediction images");
* :func:`coco_results` and :func:`write_coco_results` write detections in the COCO results
  format that ``pycocotools`` (``COCO.loadRes``) reads.

A class has the same colour everywhere (:func:`class_colour`, a fixed function of its index),
so "class 3" looks the same in every image, grid and run. When an image shows boxes and a mask,
a box class takes the colour of the mask class of the same name: a detected circle and the
circle's pixels match. Boxes, scores, classes and masks may
be torch tensors (any device), numpy arrays or nested lists; nothing here imports torch.

>>> import numpy as np
>>> drawn = draw_predictions(np.zeros((64, 64, 3), np.uint8), boxes=[[8, 8, 40, 40]],
...                          scores=[0.87], classes=[1], class_names=["cat", "dog"])
>>> drawn.size, drawn.getpixel((8, 30))  # the box's left edge, in class 1's colour
((64, 64), (114, 85, 242))
>>> coco_results([{"boxes": [[10, 20, 30, 60]], "scores": [0.5], "classes": [1]}],
...              image_ids=[7], class_names=["cat", "dog"], scale=[(0.5, 0.5)])
[{'image_id': 7, 'category_id': 2, 'bbox': [20.0, 40.0, 40.0, 80.0], 'score': 0.5, 'category_name': 'dog'}]
"""

from __future__ import annotations

import colorsys
import functools
import json
import math
import os
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Mask value left uncoloured: void pixels and letterbox padding (``IGNORE_INDEX`` in training).
IGNORE_INDEX = 255

#: How much of a mask class's colour goes into a pixel: ``pixel · (1 - α) + colour · α``.
MASK_ALPHA = 0.45

_GOLDEN = 0.618033988749895

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont
RGB = tuple[int, int, int]


# --------------------------------------------------------------------------------------------
# Colours and fonts
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def class_colour(index: int) -> RGB:
    """The RGB colour of class ``index``, the same in every call, image and run.

    Hues step by the golden ratio around the colour wheel, so neighbouring indices land far
    apart and no two of the first few hundred classes share a colour; saturation and value
    alternate to separate classes whose hues come close.

    >>> class_colour(0), class_colour(1)
    ((242, 135, 36), (114, 85, 242))

    Raises:
        ValueError: ``index`` is negative.
    """
    if index < 0:
        raise ValueError(f"class_colour wants a class index >= 0, got {index}")
    hue = (0.08 + index * _GOLDEN) % 1.0
    saturation = (0.85, 0.65, 0.95)[index % 3]
    value = (0.95, 0.80)[(index // 3) % 2]
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def _text_colour(background: RGB) -> RGB:
    """Black on light backgrounds, white on dark ones (ITU-R 601 luma)."""
    red, green, blue = background
    return (0, 0, 0) if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else (255, 255, 255)


@functools.lru_cache(maxsize=32)
def _font(size: int) -> Font:
    """Pillow's bundled font at ``size`` pixels; its fixed-size bitmap font without FreeType."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1, or built without FreeType
        return ImageFont.load_default()


def _printable(text: str, font: Font) -> str:
    """``text`` as ``font`` can draw it: the bitmap fallback font only knows Latin-1."""
    if isinstance(font, ImageFont.FreeTypeFont):
        return text
    return text.encode("latin-1", "replace").decode("latin-1")


def _sizes(width: int, height: int) -> tuple[int, int]:
    """(line width, font size) for an image: 1 px and 10 px on 64x64, growing with the shorter side."""
    side = min(width, height)
    return max(1, round(side / 250)), max(10, min(40, round(side / 36)))


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _array(value: Any) -> np.ndarray:
    """A numpy array from a torch tensor (any device, any grad state), an array or a list."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _rgb(image: Image.Image | np.ndarray | Any) -> Image.Image:
    """An RGB copy of ``image`` (a PIL image, or an ``(H, W, 3)`` / ``(H, W)`` uint8 array or tensor)."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")  # convert always copies, so the caller's image is untouched
    pixels = _array(image)
    if pixels.dtype != np.uint8:
        raise ValueError(
            f"draw_predictions wants uint8 pixels, got dtype {pixels.dtype}; "
            "for a [0, 1] float image pass (image * 255).round().astype(np.uint8)"
        )
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(
            f"draw_predictions wants an (H, W, 3) image, got shape {tuple(pixels.shape)}; "
            "a (3, H, W) tensor becomes one with image.permute(1, 2, 0)"
        )
    return Image.fromarray(np.ascontiguousarray(pixels), "RGB")


def _boxes(boxes: Any, what: str) -> np.ndarray:
    """``boxes`` as a float64 ``(K, 4)`` array; an empty input gives ``(0, 4)``."""
    array = _array(boxes).astype(np.float64)
    if array.size == 0:
        return np.zeros((0, 4))
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{what} wants boxes of shape (K, 4) as (x0, y0, x1, y1), got {tuple(array.shape)}")
    return array


def _per_box(values: Any, count: int, name: str, what: str) -> np.ndarray | None:
    """``values`` flattened to ``count`` entries, or ``None`` when not given."""
    if values is None:
        return None
    array = _array(values).reshape(-1)
    if array.shape[0] != count:
        raise ValueError(f"{what} got {count} boxes but {array.shape[0]} {name}; give one per box")
    return array


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------


def draw_predictions(
    image: Image.Image | np.ndarray | Any,
    *,
    boxes: Any = None,
    scores: Any = None,
    classes: Any = None,
    class_names: Sequence[str] | None = None,
    mask: Any = None,
    mask_names: Sequence[str] | None = None,
    labels: Sequence[str | None] | None = None,
    title: str | None = None,
    ignore_index: int = IGNORE_INDEX,
    mask_alpha: float = MASK_ALPHA,
    points: Any = None,
    point_labels: Sequence[str] | None = None,
) -> Image.Image:
    """A copy of ``image`` with a mask blended over it, boxes and labels drawn on it, and a title.

    The mask goes first, then every box outline (lowest score first, so the best box ends on
    top), then every box's label (so no outline crosses a label), then the mask legend. Line
    width and font size grow with the image's shorter side: 1 px lines and a 10 px font on a
    64x64 image, 4 px and 28 px on 1024x1024.

    Args:
        image: a PIL image (converted to RGB), or an ``(H, W, 3)`` uint8 array or tensor.
        boxes: ``(K, 4)`` ``(x0, y0, x1, y1)`` in the image's pixels.
        scores: ``(K,)`` scores in [0, 1], written after the class name with two decimals.
        classes: ``(K,)`` 0-based class indices; each box takes :func:`class_colour` of its
            class (class 0 for every box when not given), or with a mask, the colour of the
            mask class of the same name.
        class_names: a name per class index; the index itself labels a class without one.
        mask: ``(H, W)`` integer class indices at the image's size. Each class's pixels are
            blended with its colour; ``ignore_index`` pixels are left alone, and so are class
            0 pixels when ``mask_names[0]`` is ``"background"``. A legend in the bottom-left
            corner names the coloured classes.
        mask_names: a name per mask class index, for the legend.
        labels: a text per box that replaces the ``"name 0.87"`` label (for example the
            recursive pets detector's ``"dog 0.91 · american_bulldog 0.77"``); an empty
            string or ``None`` leaves that box unlabelled.
        title: written in a dark band added above the image, which makes the result taller
            than ``image`` by the band's height.
        ignore_index: the mask value that is never coloured.
        mask_alpha: the weight of a class's colour in a blended pixel.
        points: ``(P, 2)`` ``(x, y)`` in the image's pixels, each drawn as a dot in the colour of its
            position among them (a keypoints task's named points), over the boxes.
        point_labels: a text per point written beside its dot (its name and score); ``None``: none.

    Returns:
        A new RGB image; ``image`` itself is not modified.

    Raises:
        ValueError: the image is not RGB-like uint8, the mask's size differs from the image's,
            or the per-box inputs disagree in length.
    """
    picture = _rgb(image)
    width, height = picture.size
    line_width, font_size = _sizes(width, height)
    font = _font(font_size)

    if mask is not None:
        picture = _blend_mask(picture, _array(mask), mask_names, ignore_index, mask_alpha)
    if boxes is not None:
        colours = _box_colour_indices(class_names, mask_names if mask is not None else None)
        _draw_boxes(picture, boxes, scores, classes, class_names, labels, colours, line_width, font)
    if points is not None:
        _draw_points(picture, points, point_labels, line_width, font)
    if mask is not None:
        _draw_legend(picture, _array(mask), mask_names, ignore_index, font)
    if title:
        picture = _add_title(picture, title, font)
    return picture


def _box_colour_indices(class_names: Sequence[str] | None, mask_names: Sequence[str] | None) -> list[int] | None:
    """Per box class, the :func:`class_colour` index: its own, or beside a mask, the mask class of its name.

    Box classes the mask does not name take indices after the mask's, so no two classes share a colour.
    ``None`` when the box classes keep their own indices.
    """
    if not class_names or not mask_names:
        return None
    in_mask = {str(name): index for index, name in enumerate(mask_names)}
    return [in_mask.get(str(name), len(mask_names) + index) for index, name in enumerate(class_names)]


def _box_texts(
    count: int,
    scores: np.ndarray | None,
    classes: np.ndarray,
    class_names: Sequence[str] | None,
    labels: Sequence[str | None] | None,
) -> list[str]:
    """The label of each box: ``labels[k]`` when given, else ``"name 0.87"`` from what is known."""
    if labels is not None:
        if len(labels) != count:
            raise ValueError(f"draw_predictions got {count} boxes but {len(labels)} labels; give one per box")
        return [label or "" for label in labels]
    texts = []
    for k in range(count):
        index = int(classes[k])
        name = class_names[index] if class_names is not None and index < len(class_names) else str(index)
        texts.append(name if scores is None else f"{name} {float(scores[k]):.2f}")
    return texts


def _draw_boxes(
    picture: Image.Image,
    boxes: Any,
    scores: Any,
    classes: Any,
    class_names: Sequence[str] | None,
    labels: Sequence[str | None] | None,
    colours: Sequence[int] | None,
    line_width: int,
    font: Font,
) -> None:
    """Draw each box's outline, then each box's label on a filled patch in the box's colour."""
    corners = _boxes(boxes, "draw_predictions")
    count = corners.shape[0]
    score_values = _per_box(scores, count, "scores", "draw_predictions")
    class_values = _per_box(classes, count, "classes", "draw_predictions")
    class_values = np.zeros(count, dtype=np.int64) if class_values is None else class_values.astype(np.int64)
    if (class_values < 0).any():
        raise ValueError(f"draw_predictions wants class indices >= 0, got {int(class_values.min())}")
    texts = _box_texts(count, score_values, class_values, class_names, labels)
    colour_of = [
        class_colour(colours[index] if colours is not None and index < len(colours) else index)
        for index in class_values.tolist()
    ]

    ranked = np.argsort(score_values, kind="stable") if score_values is not None else np.arange(count)
    order = [k for k in ranked if np.isfinite(corners[k]).all()]
    draw = ImageDraw.Draw(picture)
    for k in order:
        x0, y0, x1, y1 = corners[k]
        # PIL refuses x1 < x0; a degenerate box is still worth seeing.
        draw.rectangle(
            (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)),
            outline=colour_of[k],
            width=line_width,
        )
    for k in order:
        if texts[k]:
            x0, y0 = min(corners[k][0], corners[k][2]), min(corners[k][1], corners[k][3])
            _draw_label(draw, picture.size, (x0, y0), texts[k], colour_of[k], font)


def _draw_points(picture: Image.Image, points: Any, labels: Sequence[str] | None, line_width: int,
                 font: Font) -> None:
    """A dot per point in its index's :func:`class_colour`, ringed in black to show on any colour, then its label."""
    spots = _array(points).astype(np.float64).reshape(-1, 2)
    if labels is not None and len(labels) != len(spots):
        raise ValueError(f"draw_predictions got {len(spots)} points but {len(labels)} point labels")
    draw = ImageDraw.Draw(picture)
    radius = 1 + line_width
    for index, (x, y) in enumerate(spots.tolist()):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=class_colour(index), outline=(0, 0, 0))
    for index, (x, y) in enumerate(spots.tolist()):
        if labels is not None and labels[index] and np.isfinite(x) and np.isfinite(y):
            _draw_label(draw, picture.size, (x + radius, y - radius), labels[index], class_colour(index), font)


def _draw_label(
    draw: ImageDraw.ImageDraw, size: tuple[int, int], corner: tuple[float, float], text: str, colour: RGB, font: Font
) -> None:
    """``text`` on a ``colour`` patch just above ``corner``, moved inside the image when it would leave it."""
    text = _printable(text, font)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(1, (bottom - top) // 5)
    patch_w, patch_h = right - left + 2 * pad, bottom - top + 2 * pad
    x = max(0.0, min(corner[0], size[0] - patch_w))
    y = corner[1] - patch_h
    if y < 0:  # a box at the top edge: the label goes just inside it instead
        y = max(0.0, corner[1])
    draw.rectangle((x, y, x + patch_w - 1, y + patch_h - 1), fill=colour)
    draw.text((x + pad - left, y + pad - top), text, fill=_text_colour(colour), font=font)


def _mask_classes(mask: np.ndarray, mask_names: Sequence[str] | None, ignore_index: int) -> list[int]:
    """The mask's classes that get a colour, in index order."""
    present = [int(value) for value in np.unique(mask) if int(value) != ignore_index]
    if mask_names and str(mask_names[0]).lower() == "background":
        present = [value for value in present if value != 0]
    if present and present[0] < 0:
        raise ValueError(f"draw_predictions wants mask class indices >= 0 (or {ignore_index}), got {present[0]}")
    return present


def _blend_mask(
    picture: Image.Image, mask: np.ndarray, mask_names: Sequence[str] | None, ignore_index: int, alpha: float
) -> Image.Image:
    """``picture`` with each coloured class's pixels blended ``alpha`` of the way to its colour."""
    if mask.ndim != 2 or mask.shape != (picture.height, picture.width):
        raise ValueError(
            f"draw_predictions wants an (H, W) mask the size of the image, {(picture.height, picture.width)}, "
            f"got {tuple(mask.shape)}; resize it with nearest-neighbour first"
        )
    mask = mask.astype(np.int64)
    pixels = np.asarray(picture).astype(np.float32)
    for index in _mask_classes(mask, mask_names, ignore_index):
        where = mask == index
        pixels[where] = pixels[where] * (1.0 - alpha) + np.asarray(class_colour(index), np.float32) * alpha
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")


def _draw_legend(
    picture: Image.Image, mask: np.ndarray, mask_names: Sequence[str] | None, ignore_index: int, font: Font
) -> None:
    """A swatch and a name per coloured mask class, bottom-left, on a translucent dark patch."""
    present = _mask_classes(mask.astype(np.int64), mask_names, ignore_index)
    if not present:
        return
    names = [str(mask_names[i]) if mask_names is not None and i < len(mask_names) else str(i) for i in present]
    draw = ImageDraw.Draw(picture, "RGBA")  # RGBA drawing blends translucent fills into an RGB image
    _, top, _, bottom = draw.textbbox((0, 0), "Ag", font=font)
    row = int(bottom - top)  # Pillow types text boxes as floats; its fonts measure whole pixels
    pad = max(1, row // 4)
    fits = max(1, (picture.height - pad) // (row + pad))
    entries: list[tuple[RGB | None, str]] = [(class_colour(i), name) for i, name in zip(present, names)]
    if len(entries) > fits:  # keep the legend inside the image: the last row counts the rest
        entries = [*entries[: fits - 1], (None, f"+{len(entries) - fits + 1} more")]
    texts = [_printable(text, font) for _, text in entries]
    text_w = max(draw.textbbox((0, 0), text, font=font)[2] for text in texts)
    patch_w = pad + row + pad + text_w + pad
    patch_h = pad + len(entries) * (row + pad)
    y0 = picture.height - patch_h
    draw.rectangle((0, y0, patch_w - 1, picture.height - 1), fill=(0, 0, 0, 160))
    for n, ((colour, _), text) in enumerate(zip(entries, texts)):
        y = y0 + pad + n * (row + pad)
        if colour is not None:
            draw.rectangle((pad, y, pad + row - 1, y + row - 1), fill=colour)
        draw.text((pad + row + pad, y - top), text, fill=(255, 255, 255), font=font)


def _add_title(picture: Image.Image, title: str, font: Font) -> Image.Image:
    """``picture`` below a dark band holding ``title``."""
    title = _printable(title, font)
    probe = ImageDraw.Draw(picture)
    left, top, _, bottom = probe.textbbox((0, 0), title, font=font)
    pad = max(2, (bottom - top) // 3)
    band = int(bottom - top + 2 * pad)  # whole pixels, as above
    out = Image.new("RGB", (picture.width, picture.height + band), (32, 32, 32))
    out.paste(picture, (0, band))
    ImageDraw.Draw(out).text((pad - left, pad - top), title, fill=(255, 255, 255), font=font)
    return out


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _replace_atomically(path: Path, write: Any) -> Path:
    """Call ``write(temporary)`` on a file beside ``path``, then rename it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def save_prediction_grid(
    images: Sequence[Image.Image | np.ndarray], path: str | os.PathLike[str], columns: int = 4
) -> Path:
    """Tile ``images`` row by row into one PNG at ``path``, creating its folders.

    Every tile is as large as the largest image (each image sits in its tile's top-left
    corner, on dark grey), so the grid is ``columns · tile width`` by ``rows · tile height``
    with ``rows = ceil(len(images) / columns)``. Fewer images than ``columns`` make a single
    row of just those images.

    Args:
        images: drawn images (:func:`draw_predictions`), or ``(H, W, 3)`` uint8 arrays.
        path: where the PNG goes; written through a temporary file and a rename.
        columns: tiles per row.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: no images, or ``columns`` below 1.
    """
    if not images:
        raise ValueError("save_prediction_grid got no images; draw at least one with draw_predictions")
    if columns < 1:
        raise ValueError(f"save_prediction_grid wants columns >= 1, got {columns}")
    tiles = [_rgb(image) for image in images]
    columns = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    tile_w, tile_h = max(t.width for t in tiles), max(t.height for t in tiles)
    grid = Image.new("RGB", (columns * tile_w, rows * tile_h), (48, 48, 48))
    for n, tile in enumerate(tiles):
        grid.paste(tile, ((n % columns) * tile_w, (n // columns) * tile_h))
    return _replace_atomically(Path(path), lambda temporary: grid.save(temporary, format="PNG"))


def coco_results(
    detections: Sequence[dict[str, Any]],
    image_ids: Sequence[Hashable],
    class_names: Sequence[str],
    scale: Sequence[tuple[float, float] | None] | None = None,
    category_ids: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Detections in the COCO results format, one dict per box, images in order.

    ``category_id`` is ``category_ids[class index]``: the class's category id in the
    annotation file it was learnt from, so the results match that file. Without
    ``category_ids`` it is the 0-based class index **plus one**, the 1-based position of
    the class in ``class_names`` (COCO reserves 0), and a ground-truth file for these
    results must number its categories the same way. ``bbox`` is ``[x, y, width, height]``
    in original-image pixels, rounded to 3 decimals; ``score`` is rounded to 5.

    Args:
        detections: per image, ``{"boxes": (K, 4) (x0, y0, x1, y1), "scores": (K,),
            "classes": (K,) 0-based}`` as tensors or arrays
            (:func:`mtdsl.detection.boxes.postprocess`'s output).
        image_ids: the COCO ``image_id`` of each image.
        class_names: a name per class index.
        scale: per image, the ``(sx, sy)`` network pixels per original pixel that the boxes
            are divided by (a :class:`~mtdsl.train.data.letterbox.Letterboxed`'s ``scale``,
            whose padding sits bottom/right so no offset is needed); ``None``, for all images
            or for one, leaves boxes as they are.
        category_ids: the COCO category id of each class, in class order.

    Returns:
        ``[{"image_id", "category_id", "bbox", "score", "category_name"}, ...]``.

    Raises:
        ValueError: the lists disagree in length, a detection lacks a key, or a class index is
            outside ``class_names``.
    """
    if len(detections) != len(image_ids):
        raise ValueError(f"coco_results got {len(detections)} detections but {len(image_ids)} image_ids")
    if scale is not None and len(scale) != len(detections):
        raise ValueError(f"coco_results got {len(detections)} detections but {len(scale)} scales; give one per image")
    if category_ids is not None and len(category_ids) != len(class_names):
        raise ValueError(f"coco_results got {len(category_ids)} category_ids for {len(class_names)} class_names")
    results: list[dict[str, Any]] = []
    for n, (detection, image_id) in enumerate(zip(detections, image_ids)):
        missing = sorted({"boxes", "scores", "classes"} - set(detection))
        if missing:
            raise ValueError(f"coco_results: detection {n} lacks {missing}; each needs boxes, scores and classes")
        boxes = _boxes(detection["boxes"], "coco_results")
        scores = _per_box(detection["scores"], boxes.shape[0], "scores", f"coco_results (image {n})")
        classes = _per_box(detection["classes"], boxes.shape[0], "classes", f"coco_results (image {n})")
        assert scores is not None and classes is not None
        if scale is not None and scale[n] is not None:
            sx, sy = scale[n]  # type: ignore[misc]
            boxes = boxes / np.array([sx, sy, sx, sy], dtype=np.float64)
        image_id = image_id.item() if isinstance(image_id, np.generic) else image_id
        for (x0, y0, x1, y1), score, index in zip(boxes.tolist(), scores.tolist(), classes.astype(np.int64).tolist()):
            if not 0 <= index < len(class_names):
                raise ValueError(
                    f"coco_results: image {n} has class index {index}, outside the "
                    f"{len(class_names)} class_names (0..{len(class_names) - 1})"
                )
            results.append({
                "image_id": image_id,
                "category_id": int(category_ids[index]) if category_ids is not None else index + 1,
                "bbox": [round(x0, 3), round(y0, 3), round(x1 - x0, 3), round(y1 - y0, 3)],
                "score": round(float(score), 5),
                "category_name": str(class_names[index]),
            })
    return results


def write_coco_results(results: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write :func:`coco_results`' output as JSON (indent 1) to ``path``, atomically.

    Args:
        results: COCO result dicts.
        path: the JSON file; its folders are created, and it is written through a temporary
            file and a rename so a reader never sees half a file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    text = json.dumps(list(results), indent=1)
    return _replace_atomically(Path(path), lambda temporary: temporary.write_text(text + "\n", encoding="utf-8"))
