"""Drawn predictions, prediction grids and COCO results files (``mtdsl.render.predictions``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageFont

from mtdsl.render.predictions import (
    class_colour,
    coco_results,
    draw_predictions,
    save_prediction_grid,
    write_coco_results,
)


def _grey(size: int = 64, value: int = 100) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.uint8)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Colours
# --------------------------------------------------------------------------------------------


def test_class_colours_are_deterministic_and_distinct():
    first = [class_colour(i) for i in range(256)]
    class_colour.cache_clear()
    assert [class_colour(i) for i in range(256)] == first
    assert len(set(first)) == len(first)
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in first)
    # The first classes, the ones every small task uses, are far apart.
    for i in range(10):
        for j in range(i + 1, 10):
            assert np.linalg.norm(np.subtract(first[i], first[j])) > 40, (i, j)


def test_class_colour_refuses_a_negative_index():
    with pytest.raises(ValueError, match="-1"):
        class_colour(-1)


# --------------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["torch", "numpy", "list"])
def test_a_box_colours_its_outline_and_nothing_far_away(kind):
    box, score, cls = [[20.0, 30.0, 50.0, 60.0]], [0.87], [2]
    if kind == "torch":
        box, score, cls = torch.tensor(box), torch.tensor(score), torch.tensor(cls)
    elif kind == "numpy":
        box, score, cls = np.array(box), np.array(score), np.array(cls)
    image = _grey()
    drawn = draw_predictions(image, boxes=box, scores=score, classes=cls, class_names=["a", "b", "c"])
    assert drawn.size == (64, 64) and drawn.mode == "RGB"
    colour = class_colour(2)
    for point in [(20, 45), (50, 45), (35, 60), (35, 30)]:  # left, right, bottom, top edges
        assert drawn.getpixel(point) == colour, point
    out = _pixels(drawn)
    # Inside the box below the label, and far outside it, nothing changed.
    assert (out[40:58, 22:48] == 100).all()
    assert (out[:, 55:] == 100).all() and (out[:18] == 100).all()
    # The label sits on a filled patch just above the box.
    assert (out[18:30, 20:50] != 100).any()
    assert (image == 100).all(), "the caller's image must not be modified"


def test_a_torch_image_and_a_pil_image_draw_the_same():
    box = [[5, 5, 40, 40]]
    from_array = draw_predictions(torch.from_numpy(_grey()), boxes=box, scores=[0.5], classes=[0])
    pil = Image.fromarray(_grey())
    from_pil = draw_predictions(pil, boxes=box, scores=[0.5], classes=[0])
    assert np.array_equal(_pixels(from_array), _pixels(from_pil))
    assert (np.asarray(pil) == 100).all()


def test_box_colours_follow_the_class():
    drawn = draw_predictions(_grey(), boxes=[[2, 20, 20, 40], [30, 20, 60, 40]], classes=[0, 5])
    assert drawn.getpixel((2, 30)) == class_colour(0)
    assert drawn.getpixel((60, 30)) == class_colour(5)
    assert class_colour(0) != class_colour(5)


def test_a_box_beside_a_mask_takes_the_colour_of_the_mask_class_of_its_name():
    mask = np.zeros((64, 64), np.int64)
    mask[40:60, 40:60] = 2  # a "square" region; box classes index circle 0, square 1, car 2
    drawn = draw_predictions(
        _grey(), boxes=[[2, 2, 20, 20], [30, 2, 50, 20], [2, 25, 20, 35]], classes=[1, 0, 2],
        class_names=["circle", "square", "car"], mask=mask, mask_names=["background", "circle", "square"],
    )
    assert drawn.getpixel((2, 10)) == class_colour(2)  # square box = mask class 2's colour
    assert drawn.getpixel((30, 10)) == class_colour(1)  # circle box = mask class 1's colour
    assert drawn.getpixel((2, 30)) not in {class_colour(i) for i in range(3)}  # car: no mask class of that name
    without_mask = draw_predictions(_grey(), boxes=[[2, 2, 20, 20]], classes=[1], class_names=["circle", "square"])
    assert without_mask.getpixel((2, 10)) == class_colour(1)


def _label_area(labels: list[str], box: list[float]) -> np.ndarray:
    """Where drawing ``labels`` changes the image, against the same box drawn unlabelled."""
    plain = draw_predictions(_grey(), boxes=[box], classes=[1], labels=[""])
    labelled = draw_predictions(_grey(), boxes=[box], classes=[1], labels=labels)
    return np.any(_pixels(plain) != _pixels(labelled), axis=2)


def test_a_label_at_the_top_edge_goes_just_inside_the_box():
    area = _label_area(["dog"], [10, 0, 60, 60])
    rows, columns = np.nonzero(area.any(axis=1))[0], np.nonzero(area.any(axis=0))[0]
    assert rows.size and rows.max() < 20
    assert columns.min() >= 10  # starts at the box's left edge


def test_a_label_wider_than_the_room_right_of_the_box_moves_left_to_stay_inside():
    area = _label_area(["dog 0.91 · american_bulldog 0.77"], [30, 20, 60, 60])
    rows, columns = np.nonzero(area.any(axis=1))[0], np.nonzero(area.any(axis=0))[0]
    assert rows.max() < 20  # above the box
    assert columns.min() < 30 and columns.max() <= 63


def test_boxes_scale_line_width_with_the_image():
    small = draw_predictions(_grey(64), boxes=[[10, 20, 50, 50]], classes=[0], labels=[""])
    large = draw_predictions(_grey(1024), boxes=[[100, 200, 900, 900]], classes=[0], labels=[""])
    assert (_pixels(small)[30, 10:14] != 100).any(axis=1).sum() == 1
    assert (_pixels(large)[500, 100:120] != 100).any(axis=1).sum() > 2


def test_draw_predictions_explains_bad_inputs():
    with pytest.raises(ValueError, match=r"\(K, 4\)"):
        draw_predictions(_grey(), boxes=[[1, 2, 3]])
    with pytest.raises(ValueError, match="1 boxes but 2 scores"):
        draw_predictions(_grey(), boxes=[[1, 2, 3, 4]], scores=[0.1, 0.2])
    with pytest.raises(ValueError, match="uint8"):
        draw_predictions(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="permute"):
        draw_predictions(np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="size of the image"):
        draw_predictions(_grey(), mask=np.zeros((32, 32), np.int64))


def test_no_boxes_and_degenerate_boxes_are_fine():
    assert np.array_equal(_pixels(draw_predictions(_grey(), boxes=torch.zeros(0, 4))),
                          _pixels(Image.fromarray(_grey())))
    draw_predictions(_grey(), boxes=[[40, 40, 10, 10], [5, 5, 5, 5]], scores=[0.3, 0.2], classes=[0, 1])


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------


def _mask() -> np.ndarray:
    mask = np.zeros((64, 64), dtype=np.int64)  # background
    mask[0:32, 32:64] = 1
    mask[32:64, 32:64] = 255  # ignore
    mask[0:16, 0:16] = 2
    return mask


@pytest.mark.parametrize("as_tensor", [False, True])
def test_mask_blends_its_classes_and_leaves_background_and_ignore_alone(as_tensor):
    mask = torch.from_numpy(_mask()) if as_tensor else _mask()
    drawn = _pixels(draw_predictions(_grey(), mask=mask, mask_names=["background", "road", "sky"]))
    expected = np.rint(100 * 0.55 + np.asarray(class_colour(1)) * 0.45)
    # Class 1's pixels away from the legend (bottom-left) are blended with its colour.
    assert np.array_equal(drawn[5:30, 35:60], np.broadcast_to(expected, (25, 25, 3)))
    assert (drawn[2:14, 2:14] != 100).any(axis=2).all()  # class 2, coloured too
    assert (drawn[32:64, 48:64] == 100).all()  # ignore, right of the legend
    assert (drawn[16:32, 0:32] == 100).all()  # background, above the legend


def test_mask_class_zero_is_coloured_unless_it_is_background():
    mask = np.zeros((64, 64), dtype=np.int64)
    named = _pixels(draw_predictions(_grey(), mask=mask, mask_names=["sky", "road"]))
    assert (named[:8, :] != 100).all()
    assert (named[:8, :] == np.rint(100 * 0.55 + np.asarray(class_colour(0)) * 0.45)).all()


def test_mask_legend_names_the_classes_present():
    mask = _mask()
    with_legend = _pixels(draw_predictions(_grey(), mask=mask, mask_names=["background", "road", "sky"]))
    # The bottom-left corner (background pixels) now holds the legend.
    assert (with_legend[48:64, 0:16] != 100).any()
    # An image of only background and ignore gets no legend.
    only_background = np.where(mask == 255, 255, 0)
    plain = _pixels(draw_predictions(_grey(), mask=only_background, mask_names=["background", "road"]))
    assert (plain == 100).all()


def test_many_mask_classes_keep_the_legend_inside_the_image():
    mask = (np.arange(64 * 64).reshape(64, 64) % 40).astype(np.int64)
    drawn = draw_predictions(_grey(), mask=mask, title="forty classes")
    assert drawn.width == 64 and drawn.height > 64  # the title band sits above the image


# --------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------


def test_grid_is_columns_by_rows_of_the_tile_size(tmp_path):
    tiles = [draw_predictions(_grey(48, value=v), boxes=[[4, 4, 30, 30]], classes=[0]) for v in range(0, 250, 50)]
    path = save_prediction_grid(tiles, tmp_path / "deep" / "folder" / "grid.png", columns=3)
    assert path == tmp_path / "deep" / "folder" / "grid.png" and path.is_file()
    with Image.open(path) as grid:
        assert grid.format == "PNG" and grid.size == (3 * 48, 2 * 48)
        assert grid.convert("RGB").getpixel((48 + 40, 40)) == (50, 50, 50)  # tile 1, away from its box
    assert not list(path.parent.glob(".*.tmp"))


def test_grid_with_fewer_images_than_columns_is_one_row(tmp_path):
    path = save_prediction_grid([_grey(32), _grey(32)], tmp_path / "g.png", columns=4)
    with Image.open(path) as grid:
        assert grid.size == (64, 32)
    with pytest.raises(ValueError, match="no images"):
        save_prediction_grid([], tmp_path / "empty.png")


# --------------------------------------------------------------------------------------------
# COCO results
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_coco_results_converts_boxes_scales_them_and_numbers_classes_from_one(kind):
    make = torch.tensor if kind == "torch" else np.array
    detections = [
        {"boxes": make([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 4.0, 2.0]]), "scores": make([0.9, 0.25]),
         "classes": make([0, 2])},
        {"boxes": make(np.zeros((0, 4), np.float32)), "scores": make(np.zeros(0)),
         "classes": make(np.zeros(0, np.int64))},
        {"boxes": make([[8.0, 8.0, 16.0, 24.0]]), "scores": make([0.5]), "classes": make([1])},
    ]
    results = coco_results(detections, [11, 12, 13], ["cat", "dog", "bird"], scale=[(2.0, 4.0), None, None])
    assert results == [
        {"image_id": 11, "category_id": 1, "bbox": [5.0, 5.0, 10.0, 10.0], "score": 0.9, "category_name": "cat"},
        {"image_id": 11, "category_id": 3, "bbox": [0.0, 0.0, 2.0, 0.5], "score": 0.25, "category_name": "bird"},
        {"image_id": 13, "category_id": 2, "bbox": [8.0, 8.0, 8.0, 16.0], "score": 0.5, "category_name": "dog"},
    ]
    assert all(type(value) in (int, float) for r in results for value in [r["image_id"], r["score"], *r["bbox"]])


def test_coco_results_without_scale_keeps_pixels_and_accepts_numpy_ids():
    detections = [{"boxes": [[1.5, 2.5, 3.5, 7.5]], "scores": [0.75], "classes": [0]}]
    results = coco_results(detections, np.array([42]), ["cat"])
    assert results[0]["bbox"] == [1.5, 2.5, 2.0, 5.0] and results[0]["image_id"] == 42
    assert type(results[0]["image_id"]) is int


def test_coco_results_explains_bad_inputs():
    good = {"boxes": [[0, 0, 1, 1]], "scores": [0.5], "classes": [3]}
    with pytest.raises(ValueError, match="class index 3"):
        coco_results([good], [1], ["a", "b"])
    with pytest.raises(ValueError, match="1 detections but 2 image_ids"):
        coco_results([good], [1, 2], ["a"])
    with pytest.raises(ValueError, match="scales"):
        coco_results([good], [1], ["a", "b", "c", "d"], scale=[])
    with pytest.raises(ValueError, match="lacks"):
        coco_results([{"boxes": [[0, 0, 1, 1]]}], [1], ["a"])


def test_write_coco_results_round_trips(tmp_path):
    results = coco_results(
        [{"boxes": torch.tensor([[10.0, 20.0, 30.0, 60.0]]), "scores": torch.tensor([0.875]),
          "classes": torch.tensor([1])}],
        [5],
        ["cat", "dog"],
        scale=[(0.5, 0.5)],
    )
    path = write_coco_results(results, tmp_path / "out" / "results.json")
    assert path == tmp_path / "out" / "results.json"
    assert json.loads(path.read_text()) == results
    assert path.read_text().startswith("[\n {")  # indent 1
    assert not list(path.parent.glob(".*.tmp"))
    write_coco_results([], path)
    assert json.loads(path.read_text()) == []


def test_the_bitmap_font_fallback_draws_non_latin1_text(monkeypatch):
    """Pillow without FreeType has only a Latin-1 bitmap font; labels must still draw."""
    from mtdsl.render import predictions

    monkeypatch.setattr(predictions, "_font", lambda size: ImageFont.load_default_imagefont())
    mask = np.zeros((64, 64), dtype=np.int64)
    mask[:10] = 1
    drawn = draw_predictions(
        _grey(), boxes=[[0, 0, 30, 30]], labels=["dog 0.91 · bulldog → 0.7"], mask=mask, mask_names=["background", "→"],
        title="t→",
    )
    assert drawn.size[0] == 64 and drawn.size[1] > 64
