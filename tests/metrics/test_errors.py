"""Gradient and connectivity error maps (DIM benchmark definitions) on cases small enough to reason about."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from e2e_him.metrics.errors import (
    connectivity_error_map,
    gradient_error_map,
    gradient_kernels,
    gradient_magnitude,
    largest_component,
)


def _dim_kernel_2d(sigma: float) -> np.ndarray:
    """The DIM benchmark's 2-D kernel written out as its definition: hx[i, j] = g(i) g'(j), unit L2 norm."""
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * 0.01)))
    hx = np.zeros((2 * half + 1, 2 * half + 1))
    for i in range(2 * half + 1):
        for j in range(2 * half + 1):
            u, v = i - half, j - half
            g = math.exp(-(u**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
            gv = math.exp(-(v**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
            hx[i, j] = g * (-v * gv / sigma**2)
    return hx / np.sqrt((hx**2).sum())


def test_kernel_size_for_sigma_1_4():
    # h = ceil(1.4 * sqrt(-2 ln(sqrt(2 pi) * 1.4 * 0.01))) = ceil(1.4 * sqrt(6.699)) = ceil(3.62) = 4: 9 taps
    g, dg = gradient_kernels(1.4)
    assert g.shape == dg.shape == (9,)
    assert np.linalg.norm(np.outer(g, dg)) == pytest.approx(1.0)
    assert dg.sum() == pytest.approx(0.0, abs=1e-15)  # antisymmetric: constants have no gradient


def test_separable_gradient_equals_the_2d_dim_filter():
    rng = np.random.default_rng(0)
    alpha = rng.random((23, 31))
    hx = _dim_kernel_2d(1.4)
    gx = ndimage.convolve(alpha, hx, mode="nearest")
    gy = ndimage.convolve(alpha, hx.T, mode="nearest")
    np.testing.assert_allclose(gradient_magnitude(alpha), np.hypot(gx, gy), rtol=1e-10, atol=1e-12)


def test_gradient_error_identical_and_constant_offset_are_zero():
    rng = np.random.default_rng(1)
    gt = rng.random((16, 16)) * 0.8
    assert gradient_error_map(gt, gt).sum() == 0.0
    # a constant offset changes no gradient: the derivative taps sum to zero
    assert gradient_error_map(gt + 0.1, gt).sum() == pytest.approx(0.0, abs=1e-20)


def test_gradient_error_of_a_step_is_positive_and_symmetric():
    gt = np.zeros((12, 12))
    gt[:, 6:] = 1.0
    pred = np.zeros((12, 12))
    err = gradient_error_map(pred, gt)
    assert err.sum() > 0
    assert err.sum() == pytest.approx(gradient_error_map(gt, pred).sum())
    assert err[:, 0].max() < 1e-3 * err.max()  # far from the edge the gradients agree (zero)


def test_largest_component_is_4_connected():
    mask = np.array(
        [
            [1, 1, 0, 0],
            [1, 0, 0, 1],
            [0, 0, 1, 0],  # touches (1, 3) only diagonally: a separate component
            [0, 0, 0, 0],
        ],
        dtype=bool,
    )
    out = largest_component(mask)
    assert out.sum() == 3 and out[0, 0] and out[0, 1] and out[1, 0]
    assert not largest_component(np.zeros((3, 3), dtype=bool)).any()


def test_connectivity_identical_is_zero():
    rng = np.random.default_rng(2)
    gt = rng.random((10, 10))
    assert connectivity_error_map(gt, gt).sum() == 0.0


def test_connectivity_isolated_blob_costs_its_alpha():
    # gt = [1, 1, 0, 0, 0]; pred adds an isolated pixel of alpha 0.5 at index 3.
    # Every threshold's largest component of pred & gt is {0, 1}: pixels 2-4 get level 0 (t_0), pixels 0-1
    # never leave it (level 1). d_pred = pred - level = [0, 0, 0, 0.5, 0] -> phi_pred = [1, 1, 1, 0.5, 1];
    # d_gt = [0, 0, 0, 0, 0] -> phi_gt = 1. Error = [0, 0, 0, 0.5, 0].
    gt = np.array([[1.0, 1.0, 0.0, 0.0, 0.0]])
    pred = np.array([[1.0, 1.0, 0.0, 0.5, 0.0]])
    np.testing.assert_allclose(connectivity_error_map(pred, gt), [[0, 0, 0, 0.5, 0]])


def test_connectivity_below_theta_is_not_penalised():
    # pred 0.9 vs gt 1 on one blob: thresholds 0.1..0.9 keep the blob, 1.0 drops it -> level 0.9;
    # d_pred = 0.0, d_gt = 0.1 < theta 0.15 -> phi = 1 for both: no error
    gt = np.zeros((5, 5))
    gt[1:4, 1:4] = 1.0
    assert connectivity_error_map(gt * 0.9, gt).sum() == pytest.approx(0.0)


def test_connectivity_8bit_values_meet_their_threshold():
    # alpha 51/255 is exactly 0.2: it passes threshold 0.2 (>=), so the level of that pixel is 0.2, d = 0 for
    # pred = gt; with pred = 1 there, d_pred = 0.8 -> phi_pred = 0.2 and phi_gt = 1 - 0 = 1: error 0.8
    gt = np.full((1, 3), 51 / 255, dtype=np.float32)
    pred = np.array([[51 / 255, 1.0, 51 / 255]], dtype=np.float32)
    np.testing.assert_allclose(connectivity_error_map(pred, gt), [[0, 0.8, 0]], atol=1e-6)


def test_connectivity_rejects_bad_step():
    with pytest.raises(ValueError, match="step"):
        connectivity_error_map(np.zeros((2, 2)), np.zeros((2, 2)), step=0.3)


@pytest.mark.parametrize("where", ["inside", "border", "empty"])
def test_grad_conn_sums_on_the_bounding_box_equal_the_whole_image(where):
    from e2e_him.metrics.errors import grad_conn_sums

    rng = np.random.default_rng(3)
    gt = np.zeros((60, 80), np.float32)
    pred = np.zeros_like(gt)
    if where != "empty":
        r0, c0 = (20, 30) if where == "inside" else (0, 55)  # "border": touches the top and right edges
        gt[r0 : r0 + 25, c0 : c0 + 25] = np.round(rng.random((25, 25)) * 255) / 255
        pred[r0 + 2 : r0 + 25, c0 : c0 + 22] = np.round(rng.random((23, 22)) * 255) / 255
    out = grad_conn_sums(pred, gt, 0.0)
    union = (pred > 0) | (gt > 0)
    assert out["grad"] == pytest.approx(gradient_error_map(pred, gt).sum(), rel=1e-10, abs=1e-12)
    assert out["conn"] == pytest.approx(connectivity_error_map(pred, gt).sum(), rel=1e-12, abs=1e-12)
    assert out["grad_union"] == pytest.approx(gradient_error_map(pred, gt)[union].sum(), rel=1e-10, abs=1e-12)
    assert out["conn_union"] == pytest.approx(connectivity_error_map(pred, gt)[union].sum(), abs=1e-12)


def test_largest_component_ties_go_to_the_first_in_raster_order():
    mask = np.zeros((6, 6), dtype=bool)
    mask[4:6, 0:2] = True  # 4 px, starts at row 4
    mask[0:2, 4:6] = True  # 4 px, starts at row 0: first in raster order
    mask[2, 2] = True
    out = largest_component(mask)
    assert out.sum() == 4 and out[0, 4] and not out[4, 0]
