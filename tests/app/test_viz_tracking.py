"""Colour overlays and the video tracker used by `predict`."""

from __future__ import annotations

import numpy as np

from e2e_him.tracking import IoUTracker, mask_iou
from e2e_him.viz import alphas_to_color, instance_colors, overlay_instances, save_prediction_grid


def test_instance_colors_distinct_and_stable():
    c5, c20 = instance_colors(5), instance_colors(20)
    assert c5.shape == (5, 3) and c20.shape == (20, 3)
    np.testing.assert_array_equal(c20[:5], c5)  # person k keeps its colour whatever the count
    assert len({tuple(c) for c in c20}) == 20


def test_overlay_tints_people_and_darkens_background():
    image = np.full((4, 6, 3), 100, dtype=np.uint8)
    alphas = np.zeros((2, 4, 6), dtype=np.float32)
    alphas[0, :, :2] = 1.0  # person 0 covers the two left columns
    alphas[1, :, 4:] = 1.0  # person 1 the two right ones
    out = overlay_instances(image, alphas, strength=1.0)
    colors = instance_colors(2)
    np.testing.assert_array_equal(out[0, 0], colors[0])  # strength 1: pure colour where alpha = 1
    np.testing.assert_array_equal(out[0, 5], colors[1])
    np.testing.assert_array_equal(out[0, 3], [50, 50, 50])  # background at half brightness
    # ids choose the colours: person 0 drawn with colour 3
    out_ids = overlay_instances(image, alphas, strength=1.0, ids=np.array([3, 1]))
    np.testing.assert_array_equal(out_ids[0, 0], instance_colors(4)[3])


def test_overlay_with_no_people_and_alphas_to_color():
    image = np.full((3, 3, 3), 200, dtype=np.uint8)
    assert (overlay_instances(image, np.zeros((0, 3, 3))) == 100).all()
    assert alphas_to_color(np.zeros((0, 3, 3))).shape == (3, 3, 3)
    half = alphas_to_color(np.full((1, 2, 2), 0.5, dtype=np.float32))
    np.testing.assert_array_equal(half[0, 0], np.round(instance_colors(1)[0] * 0.5))


def test_prediction_grid_is_written(tmp_path):
    image = np.zeros((16, 20, 3), dtype=np.uint8)
    alphas = np.zeros((1, 16, 20), dtype=np.float32)
    path = save_prediction_grid(
        [(image, alphas, alphas), (image, None, alphas[:0])], tmp_path / "grid.png", ["a", "b"]
    )
    assert path.is_file() and path.stat().st_size > 1000


def test_mask_iou_by_hand():
    a = np.zeros((1, 2, 4), dtype=bool)
    a[0, :, :2] = True  # 4 pixels
    b = np.zeros((2, 2, 4), dtype=bool)
    b[0, :, 1:3] = True  # 4 pixels, 2 shared with a -> IoU 2 / 6
    iou = mask_iou(a, b)
    np.testing.assert_allclose(iou, [[2 / 6, 0.0]])


def test_tracker_keeps_ids_when_order_changes():
    def frame(boxes):
        alphas = np.zeros((len(boxes), 10, 10), dtype=np.float32)
        for k, (x0, x1) in enumerate(boxes):
            alphas[k, :, x0:x1] = 1.0
        return alphas

    tracker = IoUTracker(min_iou=0.3)
    ids0 = tracker.update(frame([(0, 3), (6, 9)]))
    ids1 = tracker.update(frame([(6, 9), (0, 4)]))  # same two people, listed the other way round
    ids2 = tracker.update(frame([(0, 4), (6, 9), (4, 6)]))  # a third person arrives
    assert list(ids0) == [0, 1]
    assert list(ids1) == [1, 0]
    assert list(ids2) == [0, 1, 2]
    assert list(tracker.update(frame([]))) == []
    assert list(tracker.update(frame([(0, 3)]))) == [3]  # nobody to match after an empty frame: new id
