"""High-resolution photos: the network runs at a working size, then each matte is brought to the photo's full
resolution by fast guided-filter upsampling, applied only in its transition band (ours, not the paper's).

Method (He, Sun and Tang, "Guided Image Filtering", TPAMI 2013, Eq. 14-19 with a colour guide; the fast
variant of He and Sun, arXiv:1505.00996, which computes the linear coefficients at low resolution and
upsamples them, as the deep guided filter of Wu et al., CVPR 2018, does for learned outputs): at the working
size, in every (2r+1)^2 window, the matte is fitted as a linear function of the RGB photo, alpha ~ a . I + b;
the coefficient maps a (3 channels) and b are averaged, upsampled bilinearly to full size, and the matte at
full size is a . I_full + b, so that its edges follow the full-resolution photo (hair strands that plain
upsampling blurs). Outside the transition band (working-size pixels with eps < alpha < 1 - eps, dilated by r)
the bilinearly upsampled matte is kept as it is.

Memory: the full-size work is done in strips of `strip_rows` rows (cv2.remap samples any strip at
cv2.resize's bilinear positions), so besides the output mattes it needs O(strip_rows x width) floats
whatever the photo's size.
"""

from __future__ import annotations

import cv2
import numpy as np


def _box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over (2r+1)^2 windows (O(1) per pixel), reflected at the borders."""
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def guide_statistics(guide: np.ndarray, r: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """What the colour guided filter needs of the guide alone, shared by every matte of a photo: the window
    means of I (h, w, 3) and the inverse of their covariance plus eps (h, w, 3, 3) (He et al. 2013,
    Eq. 14)."""
    mean_i = _box(guide, r)  # (h, w, 3)
    outer = guide[..., :, None] * guide[..., None, :]  # (h, w, 3, 3)
    sigma = _box(outer.reshape(*guide.shape[:2], 9), r).reshape(*guide.shape[:2], 3, 3)
    sigma -= mean_i[..., :, None] * mean_i[..., None, :]
    sigma += eps * np.eye(3, dtype=np.float32)
    return mean_i, _inverse_symmetric3(sigma)


def guided_coefficients(
    guide: np.ndarray,
    alpha: np.ndarray,
    r: int,
    eps: float,
    statistics: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Mean linear coefficients (a_R, a_G, a_B, b) of the colour guided filter (He et al. 2013, Eq. 14-19).

    Args:
        guide: (h, w, 3) float32 photo in [0, 1].
        alpha: (h, w) float32 matte in [0, 1].
        r: window radius in pixels.
        eps: regularisation (larger = smoother).
        statistics: `guide_statistics(guide, r, eps)` when already computed for another matte.

    Returns:
        (h, w, 4) float32: the box-averaged a (3 channels) and b, so that q = a . I + b.
    """
    mean_i, inverse = statistics or guide_statistics(guide, r, eps)
    mean_p = _box(alpha, r)  # (h, w)
    cov_ip = _box(guide * alpha[..., None], r) - mean_i * mean_p[..., None]  # (h, w, 3)
    a = np.einsum("hwij,hwj->hwi", inverse, cov_ip)  # (h, w, 3)
    b = mean_p - np.einsum("hwc,hwc->hw", a, mean_i)
    return np.concatenate([_box(a, r), _box(b.astype(np.float32), r)[..., None]], axis=2)


def _inverse_symmetric3(sigma: np.ndarray) -> np.ndarray:
    """The inverse of each symmetric positive definite sigma (h, w, 3, 3), in closed form by cofactors
    (elementwise, many times faster than a batched np.linalg.inv)."""
    s00, s01, s02 = sigma[..., 0, 0], sigma[..., 0, 1], sigma[..., 0, 2]
    s11, s12, s22 = sigma[..., 1, 1], sigma[..., 1, 2], sigma[..., 2, 2]
    c00, c01, c02 = s11 * s22 - s12 * s12, s02 * s12 - s01 * s22, s01 * s12 - s02 * s11
    c11, c12, c22 = s00 * s22 - s02 * s02, s01 * s02 - s00 * s12, s00 * s11 - s01 * s01
    det = s00 * c00 + s01 * c01 + s02 * c02
    cofactors = np.stack([c00, c01, c02, c01, c11, c12, c02, c12, c22], -1).reshape(sigma.shape)
    return (cofactors / det[..., None, None]).astype(np.float32)


def transition_band(alpha: np.ndarray, r: int, eps: float = 0.01) -> np.ndarray:
    """(h, w) bool: pixels with eps < alpha < 1 - eps, dilated by r pixels."""
    band = ((alpha > eps) & (alpha < 1.0 - eps)).astype(np.uint8)
    if r > 0:
        band = cv2.dilate(band, np.ones((2 * r + 1, 2 * r + 1), np.uint8))
    return band.astype(bool)


def _sample_rows(maps: np.ndarray, rows: slice, size: tuple[int, int]) -> np.ndarray:
    """Bilinear samples of low-resolution `maps` (h, w[, c]) on full-size rows `rows` of an (H, W) grid, at
    cv2.resize(maps, (W, H), INTER_LINEAR)'s sample positions (to within OpenCV's 1/32-pixel weights)."""
    h, w = maps.shape[:2]
    big_h, big_w = size
    ys = (np.arange(rows.start, rows.stop, dtype=np.float32) + 0.5) * (h / big_h) - 0.5
    xs = (np.arange(big_w, dtype=np.float32) + 0.5) * (w / big_w) - 0.5
    map_x = np.broadcast_to(xs[None, :], (len(ys), big_w)).astype(np.float32)
    map_y = np.broadcast_to(ys[:, None], (len(ys), big_w)).astype(np.float32)
    return cv2.remap(maps, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def upsample_mattes(alphas: np.ndarray, size: tuple[int, int], strip_rows: int = 256) -> np.ndarray:
    """Plain bilinear upsampling of (K, h, w) mattes to (K, H, W) (the baseline of `refine_mattes`)."""
    out = np.empty((len(alphas), *size), dtype=np.float32)
    for k, alpha in enumerate(alphas.astype(np.float32)):
        for y0 in range(0, size[0], strip_rows):
            rows = slice(y0, min(y0 + strip_rows, size[0]))
            out[k, rows] = _sample_rows(alpha, rows, size)
    return out


def refine_mattes(
    image: np.ndarray,
    alphas: np.ndarray,
    radius: int = 1,
    eps: float = 1e-4,
    band_eps: float = 0.01,
    strip_rows: int = 256,
) -> np.ndarray:
    """Working-size mattes -> full-size mattes by guided upsampling in the transition band (module doc).

    Args:
        image: (H, W, 3) uint8 photo at full size.
        alphas: (K, h, w) float mattes in [0, 1] at the working size (the photo resized to (h, w)).
        radius: guided filter radius r at the working size.
        eps: guided filter regularisation, for a guide in [0, 1].
        band_eps: alpha values within this of 0 or 1 are outside the transition band.
        strip_rows: full-size rows processed at once (bounds the memory).

    Returns:
        (K, H, W) float32 mattes in [0, 1].
    """
    big_h, big_w = image.shape[:2]
    k, h, w = alphas.shape
    out = np.empty((k, big_h, big_w), dtype=np.float32)
    if not k:
        return out
    small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    statistics = None  # of the guide: computed once, for the first matte with a transition band
    for i, alpha in enumerate(alphas.astype(np.float32)):
        band = transition_band(alpha, radius, band_eps)  # (h, w)
        band_map = band.astype(np.float32) if band.any() else None  # None: only 0 and 1, upsampled as is
        if band_map is not None:
            statistics = statistics or guide_statistics(small, radius, eps)
            coefficients = guided_coefficients(small, alpha, radius, eps, statistics)  # (h, w, 4)
        for y0 in range(0, big_h, strip_rows):
            rows = slice(y0, min(y0 + strip_rows, big_h))
            plain = _sample_rows(alpha, rows, (big_h, big_w))  # (r, W)
            inside = None if band_map is None else _sample_rows(band_map, rows, (big_h, big_w)) > 0
            if inside is not None and inside.any():
                ab = _sample_rows(coefficients, rows, (big_h, big_w))  # (r, W, 4)
                guide = image[rows].astype(np.float32) / 255.0
                refined = np.einsum("rwc,rwc->rw", ab[..., :3], guide) + ab[..., 3]
                plain = np.where(inside, np.clip(refined, 0.0, 1.0), plain)
            out[i, rows] = plain
    return out
