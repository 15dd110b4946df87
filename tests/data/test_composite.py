"""Instance compositing (Sec. IV-B): alpha blending, occlusion, people counts, invisible people dropped."""

from __future__ import annotations

import numpy as np
import pytest

from e2e_him.data.composite import composite_instances, largest_instances, visible_instances


def _record(
    image_value: int, boxes: list[tuple[int, int, int, int, float]], size=(20, 30), masks=False
) -> dict:
    """A flat-coloured photo and one constant-alpha rectangle (top, left, h, w, alpha) per person."""
    alphas = np.zeros((len(boxes), *size), np.float32)
    for k, (t, l, h, w, a) in enumerate(boxes):
        alphas[k, t : t + h, l : l + w] = a
    image = np.full((*size, 3), image_value, np.uint8)
    return {
        "image": image,
        "alphas": alphas,
        "masks": alphas >= 0.5 if masks else None,
        "name": f"img{image_value}",
    }


def test_full_size_paste_blends_and_occludes():
    # scale_range (1, 1) and equal sizes: the pasted photo covers the target exactly, offset (0, 0)
    target = _record(100, [(0, 0, 10, 10, 1.0), (0, 20, 10, 10, 1.0)])
    paste = _record(200, [(0, 5, 10, 10, 0.5)])  # half-transparent person over columns 5..14
    out = composite_instances(
        target, paste, np.random.default_rng(0), scale_range=(1, 1), min_visible_pixels=1
    )
    assert len(out["alphas"]) == 3 and out["name"] == "img100"
    # pixel (0, 7): target person 0 (alpha 1) behind pasted alpha 0.5 -> 1 * (1 - 0.5) = 0.5
    assert out["alphas"][0, 0, 7] == pytest.approx(0.5)
    assert out["alphas"][2, 0, 7] == pytest.approx(0.5)
    assert out["alphas"][0, 0, 2] == 1.0  # not covered
    assert out["alphas"][1, 0, 25] == 1.0  # person 1 is not under the pasted one
    # colour: F * A + I * (1 - A) = 200 * 0.5 + 100 * 0.5 = 150; outside the pasted alpha the target stays
    assert (out["image"][0, 7] == 150).all() and (out["image"][0, 2] == 100).all()
    assert (out["alphas"].sum(0) <= 1.0 + 1e-6).all()


def test_alphas_sum_at_most_one_and_pasted_normalised():
    rng = np.random.default_rng(1)
    target = _record(50, [(2, 2, 12, 12, 0.6), (5, 10, 12, 15, 0.4)])
    # two pasted people overlapping with alphas summing to 1.6: normalised before blending
    paste = _record(220, [(0, 0, 20, 20, 0.8), (5, 5, 15, 25, 0.8)], size=(25, 40))
    for _ in range(20):
        out = composite_instances(target, paste, rng, scale_range=(0.3, 1.0), min_visible_pixels=0)
        assert (out["alphas"].sum(0) <= 1.0 + 1e-5).all()
        assert (out["alphas"] >= 0).all()


def test_hidden_person_is_dropped_and_count_is_right():
    target = _record(100, [(0, 0, 10, 10, 1.0), (10, 20, 5, 5, 1.0)])
    paste = _record(200, [(0, 0, 12, 12, 1.0)])  # fully covers target person 0
    out = composite_instances(
        target, paste, np.random.default_rng(0), scale_range=(1, 1), min_visible_pixels=1
    )
    assert len(out["alphas"]) == 2  # person 0 gone, person 1 kept, one pasted
    assert out["alphas"][0, 12, 22] == 1.0 and out["alphas"][1, 0, 0] == 1.0


def test_mostly_hidden_person_dropped_by_fraction():
    target = _record(100, [(0, 0, 10, 10, 1.0)])
    paste = _record(200, [(0, 0, 10, 9, 1.0)])  # leaves one column (10 px = 10 %) of person 0 visible
    kw = {"scale_range": (1, 1), "min_visible_pixels": 1}
    kept = composite_instances(target, paste, np.random.default_rng(0), min_visible_fraction=0.05, **kw)
    dropped = composite_instances(target, paste, np.random.default_rng(0), min_visible_fraction=0.2, **kw)
    assert len(kept["alphas"]) == 2 and len(dropped["alphas"]) == 1


def test_max_instances_pastes_only_the_largest_that_fit():
    target = _record(100, [(0, 0, 3, 3, 1.0)])
    paste = _record(200, [(10, 0, 2, 2, 1.0), (10, 10, 8, 8, 1.0), (10, 20, 4, 4, 1.0)])
    out = composite_instances(
        target, paste, np.random.default_rng(0), scale_range=(1, 1), min_visible_pixels=1, max_instances=3
    )
    areas = out["alphas"].sum((1, 2))
    assert areas.tolist() == [9.0, 64.0, 16.0]  # target person, then the two largest pasted in their order
    full = {"scale_range": (1, 1), "min_visible_pixels": 1, "max_instances": 1}
    assert composite_instances(target, paste, np.random.default_rng(0), **full) is target


def test_scaled_paste_stays_inside_and_masks_follow():
    target = _record(100, [(0, 0, 20, 30, 1.0)], masks=True)
    paste = _record(200, [(0, 0, 40, 60, 1.0)], size=(40, 60), masks=True)
    out = composite_instances(
        target, paste, np.random.default_rng(3), scale_range=(0.5, 0.5), min_visible_pixels=1
    )
    # the 40 x 60 photo fits the 20 x 30 target at scale 0.5, times 0.5 -> a 10 x 15 patch
    assert out["alphas"][1].sum() == pytest.approx(150.0)
    assert out["masks"].shape == (2, 20, 30) and out["masks"][1].sum() == 150
    assert not (out["masks"][0] & out["masks"][1]).any()  # the occluded region left the target's mask


def test_same_rng_same_result():
    target = _record(100, [(0, 0, 10, 10, 1.0)])
    paste = _record(200, [(2, 2, 10, 10, 1.0)], size=(30, 30))
    a = composite_instances(target, paste, np.random.default_rng(7))
    b = composite_instances(target, paste, np.random.default_rng(7))
    assert np.array_equal(a["alphas"], b["alphas"]) and np.array_equal(a["image"], b["image"])


def test_visible_and_largest_helpers():
    areas = np.array([0.0, 50.0, 200.0, 200.0])
    before = np.array([10.0, 60.0, 10000.0, 400.0])
    # min 100 px and 10 % of the area before: 0 (empty), 50 (< 100), 200 (2 % < 10 %), 200 (50 %)
    assert visible_instances(areas, before, 100, 0.1).tolist() == [False, False, False, True]
    alphas = np.zeros((3, 4, 4), np.float32)
    alphas[0, :1], alphas[1, :3], alphas[2, :2] = 1, 1, 1
    assert largest_instances(alphas, 2).tolist() == [1, 2]
