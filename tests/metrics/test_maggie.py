"""MaGGIe's per-person errors at both scales: hand-computed cases, its quirks, and a cross-check against a
second, independent implementation of its definitions (`maggie_reference`)."""

from __future__ import annotations

import math

import cv2
import maggie_reference as ref
import numpy as np
import pytest
import torch

from e2e_him.metrics.maggie import (
    TRIMAP_KERNEL,
    MaggieMetrics,
    image_errors,
    maggie_gradient_magnitude,
    maggie_trimap,
    metric_keys,
)


def _square(h: int, w: int, r0: int, r1: int, c0: int, c1: int, value: float = 1.0) -> np.ndarray:
    a = np.zeros((h, w), np.float32)
    a[r0:r1, c0:c1] = value
    return a


def test_trimap_kernel_is_opencvs_25px_ellipse():
    # OpenCV's MORPH_ELLIPSE rows: dx = round(12 * sqrt(1 - (dy / 12)^2)), columns 12 - dx .. 12 + dx
    for i in range(25):
        dy = i - 12
        dx = round(12 * math.sqrt((144 - dy * dy) / 144))
        expected = np.zeros(25, np.uint8)
        expected[12 - dx : 12 + dx + 1] = 1
        np.testing.assert_array_equal(TRIMAP_KERNEL[i], expected)


def test_trimap_of_a_square_by_brute_force():
    gt = _square(64, 70, 16, 46, 20, 50)  # 30 x 30 person
    # max and min of alpha over each pixel's elliptical neighbourhood, outside the image ignored (as cv2 does)
    padded_hi = np.pad(gt, 12, constant_values=-np.inf)
    padded_lo = np.pad(gt, 12, constant_values=np.inf)
    hi = np.full(gt.shape, -np.inf)
    lo = np.full(gt.shape, np.inf)
    for dy, dx in np.argwhere(TRIMAP_KERNEL) - 12:
        hi = np.maximum(hi, padded_hi[12 + dy : 12 + dy + 64, 12 + dx : 12 + dx + 70])
        lo = np.minimum(lo, padded_lo[12 + dy : 12 + dy + 64, 12 + dx : 12 + dx + 70])
    expected = np.where(gt > 0.5, 2, 0)
    expected[hi != lo] = 1
    np.testing.assert_array_equal(maggie_trimap(gt), expected)
    # the 30 px square keeps a 6 x 6 foreground core (12 px from each side) and a band of unknown around it
    assert (maggie_trimap(gt) == 2).sum() == 36


def test_trimap_uint8_shortcut_matches_float_dilation():
    rng = np.random.default_rng(0)
    gt = np.round(rng.random((40, 50)) * 3) / 255  # 8-bit values
    gt = gt.astype(np.float32)
    np.testing.assert_array_equal(maggie_trimap(gt), ref.trimap(gt))
    soft = rng.random((40, 50)).astype(np.float32) * (rng.random((40, 50)) > 0.7)  # not 8-bit
    np.testing.assert_array_equal(maggie_trimap(soft), ref.trimap(soft))


def test_scales_by_hand():
    # one person of 30 x 30 = 900 px in a 64 x 70 image (HW = 4480), predicted at 0.9:
    # sum |d| = 90, sum d^2 = 9
    gt = _square(64, 70, 16, 46, 20, 50)
    out = {k: float(v[0]) for k, v in image_errors((gt * 0.9)[None], gt[None]).items()}
    hw = 64 * 70
    assert out["MAD_maggie"] == pytest.approx(90 / (hw * (hw + 1e-6)) * 1e10)
    assert out["MSE_maggie"] == pytest.approx(9 / (hw * (hw + 1e-6)) * 1e10)
    assert out["SAD_maggie"] == out["SAD_x1e-3"] == pytest.approx(0.09)
    assert out["MAD_x1e3"] == pytest.approx(90 / hw * 1e3) and out["MSE_x1e3"] == pytest.approx(9 / hw * 1e3)
    # foreground core 36 px, all inside the person: |d| = 0.1 there
    assert out["MADf_x1e3"] == pytest.approx(100.0)
    assert out["MADf_maggie"] == pytest.approx(3.6 / (hw * (36 + 1e-6)) * 1e10)
    # background: d = 0 -> 0 at both scales; unknown: the remaining 864 px of the person at 0.1
    n_u = int((maggie_trimap(gt) == 1).sum())
    assert out["MADb_maggie"] == out["MADb_x1e3"] == 0.0
    assert out["MADu_x1e3"] == pytest.approx(86.4 / n_u * 1e3)
    # MaGGIe's Grad normalises each matte stack to [0, 1]: a uniformly dimmed person has no Grad error,
    # the DIM Grad sees the 10 % weaker edge; Conn: d = 0.1 < theta = 0.15 -> no error at both scales
    assert out["Grad_maggie"] == pytest.approx(0.0, abs=1e-9) and out["Grad_x1e-3"] > 1e-4
    assert out["Conn_maggie"] == out["Conn_x1e-3"] == pytest.approx(0.0)


def test_grad_normalisation_is_joint_over_the_people_of_an_image():
    # two people dimmed to 0.5 and kept at 1: normalised by the stack's max (1), the dim one keeps its error
    a, b = _square(40, 60, 5, 30, 5, 25), _square(40, 60, 5, 30, 35, 55)
    out = image_errors(np.stack([a * 0.5, b]), np.stack([a, b]))
    assert out["Grad_maggie"][0] > 1e-3 and out["Grad_maggie"][1] == pytest.approx(0.0, abs=1e-12)
    alone = image_errors((a * 0.5)[None], a[None])
    assert alone["Grad_maggie"][0] == pytest.approx(0.0, abs=1e-9)


def test_empty_region_is_zero_at_maggies_scale_and_left_out_of_the_usual_mean():
    gt = _square(20, 20, 0, 20, 0, 20)  # the whole image is the person: no background
    out = image_errors(gt[None] * 0.5, gt[None])
    assert out["MADb_maggie"][0] == 0.0 and math.isnan(out["MADb_x1e3"][0])
    m = MaggieMetrics()
    m.update([torch.from_numpy(gt[None] * 0.5)], [torch.from_numpy(gt[None])])
    person = _square(40, 40, 10, 30, 10, 30)
    m.update([torch.from_numpy(person[None] * 0.5)], [torch.from_numpy(person[None])])
    res = {k: float(v) for k, v in m.compute().items()}
    second = image_errors(person[None] * 0.5, person[None])
    assert res["MADb_x1e3"] == pytest.approx(second["MADb_x1e3"][0])  # one person has a background
    assert res["MADb_maggie"] == pytest.approx(second["MADb_maggie"][0] / 2)  # both counted


def test_mean_over_people_not_images():
    a = _square(30, 30, 0, 10, 0, 10)
    b = _square(30, 30, 15, 30, 15, 30)
    m = MaggieMetrics(grad_conn=False)
    m.update(
        [torch.from_numpy(np.stack([a * 0, b])), torch.from_numpy(b[None] * 0.5)],
        [torch.from_numpy(np.stack([a, b])), torch.from_numpy(b[None])],
    )
    res = {k: float(v) for k, v in m.compute().items()}
    # people: a missed (|d| = 100 px), b exact, b at 0.5 (225 px * 0.5): MAD_x1e3 mean of the three
    expected = np.mean([100 / 900, 0.0, 112.5 / 900]) * 1e3
    assert res["MAD_x1e3"] == pytest.approx(expected)
    assert list(res) == metric_keys(False)


def test_gradient_magnitude_is_zero_padded_correlation():
    rng = np.random.default_rng(1)
    x = rng.random((17, 23)).astype(np.float32)
    np.testing.assert_allclose(maggie_gradient_magnitude(x), ref.gradient_magnitude(x), rtol=1e-5, atol=1e-6)
    # zero padding: a constant image has an edge along the border, nowhere else
    flat = maggie_gradient_magnitude(np.ones((17, 23), np.float32))
    assert flat[8, 11] == pytest.approx(0.0, abs=1e-6) and flat[0, 11] > 0.1 and flat[8, 0] > 0.1


def _scene(rng, h=72, w=90, people=3):
    """People with soft edges (8-bit), one touching the border, and noisy predictions."""
    gts, preds = [], []
    for k in range(people):
        a = np.zeros((h, w), np.float32)
        r0, c0 = rng.integers(0, h // 2), rng.integers(0, w // 2) if k else 0
        a[r0 : r0 + h // 2, c0 : c0 + w // 3] = 1.0
        a = cv2.GaussianBlur(a, (7, 7), 2.0)
        gts.append(np.round(a * 255) / 255)
        p = np.clip(a + 0.15 * rng.standard_normal(a.shape) * (a > 0.05), 0, 1)
        preds.append(np.round(p * 255) / 255)
    return np.stack(preds).astype(np.float32), np.stack(gts).astype(np.float32)


@pytest.mark.parametrize("seed,haze", [(0, 0.0), (1, 0.0), (2, 0.02)])
def test_agrees_with_an_independent_implementation_of_maggies_definitions(seed, haze):
    # haze: a prediction with no zero pixel, whose normalised background is not zero (no cropping then)
    pred, gt = _scene(np.random.default_rng(seed))
    pred = np.clip(pred + np.float32(haze), 0, 1)
    ours = image_errors(pred, gt)
    theirs = ref.image_metrics(pred, gt)
    for key, (score, count) in theirs.items():
        assert ours[f"{key}_maggie"].sum() == pytest.approx(score, rel=2e-5, abs=1e-9), key
        assert len(ours[f"{key}_maggie"]) == count


def test_metric_pairs_by_iou_or_takes_pairs_as_given():
    a, b = _square(30, 40, 2, 14, 2, 18), _square(30, 40, 16, 28, 20, 38)
    gt = torch.from_numpy(np.stack([a, b]))
    swapped = torch.from_numpy(np.stack([b, a * 0.6]))  # person b first, person a dimmed second
    by_iou = MaggieMetrics(grad_conn=False, pairing="iou")
    by_iou.update([swapped], [gt])
    as_given = MaggieMetrics(grad_conn=False)
    as_given.update([swapped], [gt])
    dim_a = 0.4 * a.sum() / a.size * 1e3
    assert float(by_iou.compute()["MAD_x1e3"]) == pytest.approx(dim_a / 2, rel=1e-6)  # a at 0.6, b exact
    assert float(as_given.compute()["MAD_x1e3"]) > 2 * dim_a  # each person scored against the other
    missed = MaggieMetrics(grad_conn=False, pairing="iou")
    missed.update([torch.from_numpy(b[None])], [gt])  # a has no prediction: scored against zero
    assert float(missed.compute()["MAD_x1e3"]) == pytest.approx(a.sum() / a.size * 1e3 / 2)
    with pytest.raises(ValueError, match="pairing=paired"):
        as_given.update([swapped[:1]], [gt])
