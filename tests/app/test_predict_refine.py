"""Full-resolution guided refinement of working-size mattes (e2e_him.predictor.refine)."""

from __future__ import annotations

import cv2
import numpy as np

from e2e_him.predictor.refine import (
    _inverse_symmetric3,
    _sample_rows,
    guide_statistics,
    guided_coefficients,
    refine_mattes,
    transition_band,
    upsample_mattes,
)


def _strands(size: tuple[int, int] = (240, 320)) -> tuple[np.ndarray, np.ndarray]:
    """A photo of dark strands on a light background and its exact full-resolution matte."""
    h, w = size
    alpha = np.zeros(size, dtype=np.float32)
    alpha[:, : w // 3] = 1.0  # a solid body on the left
    for x in range(w // 3 + 6, w - 10, 9):  # 2-px strands, the kind that plain upsampling blurs away
        alpha[20 : h - 20, x : x + 2] = 1.0
    fg, bg = np.array([40, 30, 20], np.float32), np.array([230, 220, 200], np.float32)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    return np.round(image).astype(np.uint8), alpha


def test_row_samples_equal_opencv_resize_on_any_strip():
    low = np.random.default_rng(0).random((37, 53, 4)).astype(np.float32)
    full = cv2.resize(low, (200, 150), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(_sample_rows(low, slice(0, 150), (150, 200)), full, atol=1e-5)
    np.testing.assert_allclose(_sample_rows(low, slice(41, 77), (150, 200)), full[41:77], atol=1e-5)
    exact = cv2.resize(low, (212, 148), interpolation=cv2.INTER_LINEAR)  # 4x: OpenCV's fixed-point weights
    np.testing.assert_allclose(_sample_rows(low, slice(0, 148), (148, 212)), exact, atol=2e-3)


def test_guided_coefficients_reproduce_a_matte_that_is_linear_in_the_guide():
    rng = np.random.default_rng(1)
    guide = rng.random((30, 40, 3)).astype(np.float32)
    alpha = 0.2 * guide[..., 0] + 0.5 * guide[..., 2] + 0.1  # exactly linear: q = a . I + b everywhere
    ab = guided_coefficients(guide, alpha, r=2, eps=1e-8)
    q = np.einsum("hwc,hwc->hw", ab[..., :3], guide) + ab[..., 3]
    np.testing.assert_allclose(q, alpha, atol=1e-3)


def test_refinement_recovers_strands_that_bilinear_upsampling_blurs():
    image, truth = _strands()
    small = cv2.resize(truth, (320 // 4, 240 // 4), interpolation=cv2.INTER_AREA)[None]
    plain = upsample_mattes(small, truth.shape)[0]
    refined = refine_mattes(image, small, radius=1, eps=1e-4)[0]
    band = transition_band(cv2.resize(small[0], (320, 240)), r=0)
    error_plain = np.abs(plain - truth)[band].mean()
    error_refined = np.abs(refined - truth)[band].mean()
    assert error_refined < 0.5 * error_plain, (error_refined, error_plain)
    assert refined.dtype == np.float32 and refined.min() >= 0.0 and refined.max() <= 1.0


def test_refinement_is_the_same_in_any_strip_size_and_keeps_solid_regions():
    image, truth = _strands()
    small = cv2.resize(truth, (80, 60), interpolation=cv2.INTER_AREA)[None]
    whole = refine_mattes(image, small, strip_rows=1000)
    strips = refine_mattes(image, small, strip_rows=7)
    np.testing.assert_array_equal(whole, strips)
    plain = upsample_mattes(small, truth.shape)
    band = transition_band(small[0], r=1).astype(np.float32)
    inside = _sample_rows(band, slice(0, 240), (240, 320)) > 0  # the band at full size
    assert 0.05 < inside.mean() < 0.9
    np.testing.assert_array_equal(whole[0][~inside], plain[0][~inside])  # only the band changes
    assert np.isin(whole[0][~inside], (0.0, 1.0)).mean() > 0.99  # solid regions stay 0 or 1
    assert refine_mattes(image, small[:0]).shape == (0, 240, 320)


def test_closed_form_inverse_solves_like_numpy():
    rng = np.random.default_rng(2)
    m = rng.random((5, 7, 3, 3)).astype(np.float32)
    sigma = m @ np.swapaxes(m, -1, -2) + 1e-2 * np.eye(3, dtype=np.float32)  # symmetric positive definite
    rhs = rng.random((5, 7, 3)).astype(np.float32)
    expected = np.linalg.solve(sigma.astype(np.float64), rhs[..., None].astype(np.float64))[..., 0]
    solved = np.einsum("hwij,hwj->hwi", _inverse_symmetric3(sigma), rhs)
    np.testing.assert_allclose(solved, expected, rtol=1e-3, atol=1e-3)


def test_guide_statistics_shared_between_mattes_give_the_same_coefficients():
    rng = np.random.default_rng(3)
    guide = rng.random((30, 40, 3)).astype(np.float32)
    statistics = guide_statistics(guide, 1, 1e-4)
    for seed in (4, 5):
        alpha = np.random.default_rng(seed).random((30, 40)).astype(np.float32)
        shared = guided_coefficients(guide, alpha, 1, 1e-4, statistics)
        np.testing.assert_array_equal(shared, guided_coefficients(guide, alpha, 1, 1e-4))


def test_mattes_without_a_transition_band_are_upsampled_as_they_are():
    image, truth = _strands()
    hard = (cv2.resize(truth, (80, 60), interpolation=cv2.INTER_AREA) > 0.5).astype(np.float32)[None]
    np.testing.assert_array_equal(refine_mattes(image, hard), upsample_mattes(hard, truth.shape))


def _reference_coefficients(guide: np.ndarray, alpha: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al. 2013, Eq. 14-19 pixel by pixel in float64: a 3x3 solve in every window (borders mirrored
    as cv2.BORDER_REFLECT does), then the window means of a and b."""
    pad = [(r, r), (r, r)]
    guide_p = np.pad(guide.astype(np.float64), [*pad, (0, 0)], mode="symmetric")
    alpha_p = np.pad(alpha.astype(np.float64), pad, mode="symmetric")
    h, w = alpha.shape
    ab = np.zeros((h, w, 4))
    for y in range(h):
        for x in range(w):
            win_i = guide_p[y : y + 2 * r + 1, x : x + 2 * r + 1].reshape(-1, 3)
            win_p = alpha_p[y : y + 2 * r + 1, x : x + 2 * r + 1].reshape(-1)
            mu, mean_p = win_i.mean(0), win_p.mean()
            sigma = win_i.T @ win_i / len(win_p) - np.outer(mu, mu)
            a = np.linalg.solve(sigma + eps * np.eye(3), (win_i * win_p[:, None]).mean(0) - mu * mean_p)
            ab[y, x] = [*a, mean_p - a @ mu]
    ab_p = np.pad(ab, [*pad, (0, 0)], mode="symmetric")
    k = 2 * r + 1
    return np.stack([ab_p[y : y + k, x : x + k].mean((0, 1)) for y in range(h) for x in range(w)]).reshape(
        h, w, 4
    )


def test_guided_coefficients_equal_a_per_window_solve():
    """Pins the fast path (window means by box filters, the closed-form inverse, the guide's statistics
    shared between mattes) to the textbook filter."""
    rng = np.random.default_rng(6)
    guide = rng.random((14, 17, 3)).astype(np.float32)
    statistics = guide_statistics(guide, 2, 1e-3)
    for alpha in (rng.random((14, 17)), (guide.mean(2) > 0.5) * 0.8 + 0.1):
        alpha = alpha.astype(np.float32)
        expected = _reference_coefficients(guide, alpha, 2, 1e-3)
        np.testing.assert_allclose(
            guided_coefficients(guide, alpha, 2, 1e-3, statistics), expected, atol=2e-4
        )
