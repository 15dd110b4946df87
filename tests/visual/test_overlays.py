"""People in colour: overlays, all mattes on black, the prediction grid a run ends with."""

from __future__ import annotations

import numpy as np

from e2e_him.visual.overlays import alphas_to_color, instance_colors, overlay_instances, save_prediction_grid


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
