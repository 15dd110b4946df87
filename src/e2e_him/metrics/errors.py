"""Per-pixel gradient and connectivity errors of the matting literature (Rhemann et al. 2009, DIM benchmark).

Both return an error *map*; callers decide how to reduce it: human matting sums it over the whole image and
divides by 1000 (DIM benchmark scale), IMQ averages it over the union of the two masks (InstMatt).

- Gradient: the magnitude of a Gaussian-derivative gradient (sigma 1.4) of each matte, with the DIM
  benchmark's filter: a (2h+1)^2 kernel hx[i, j] = g(i) * g'(j),
  h = ceil(sigma * sqrt(-2 ln(sqrt(2 pi) sigma eps))), eps = 0.01 (h = 4 for sigma 1.4: a 9x9 kernel), scaled
  to unit L2 norm, borders replicated; the error is (|grad pred| - |grad gt|)^2. The kernel is separable, so
  it is applied as two 1-D convolutions.
- Connectivity: for thresholds t_i = i * step (i = 1 .. 1/step), the largest 4-connected component of
  {pred >= t_i} & {gt >= t_i}; a pixel's level l is the last threshold t_{i-1} before it leaves that component
  (1 if it never leaves); d = alpha - l, phi = 1 - d * [d >= theta] (theta = 0.15); the error is
  |phi_pred - phi_gt|.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def gradient_kernels(sigma: float = 1.4, epsilon: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """The 1-D factors (g, g') of the DIM benchmark's L2-normalised Gaussian-derivative kernel hx = g (x) g'.

    Args:
        sigma: Gaussian standard deviation in pixels.
        epsilon: the kernel is cut where the Gaussian falls below epsilon of its peak (DIM's truncation rule).

    Returns:
        gauss, dgauss: (2h+1,) float64 arrays of unit L2 norm each, so their outer product has unit norm.
    """
    half = math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * epsilon)))
    x = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-(x**2) / (2.0 * sigma**2)) / (sigma * math.sqrt(2.0 * math.pi))
    dgauss = -x * gauss / sigma**2
    return gauss / np.linalg.norm(gauss), dgauss / np.linalg.norm(dgauss)


def gradient_magnitude(alpha: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    """|grad alpha| with the DIM benchmark's Gaussian-derivative filters, borders replicated.

    Args:
        alpha: (H, W) matte in [0, 1].
        sigma: Gaussian standard deviation in pixels.

    Returns:
        (H, W) float64 gradient magnitude.
    """
    gauss, dgauss = gradient_kernels(sigma)
    a = np.asarray(alpha, dtype=np.float64)
    # hx = outer(gauss over rows, dgauss over columns): x-derivative; hy = hx.T: y-derivative
    gx = ndimage.convolve1d(
        ndimage.convolve1d(a, dgauss, axis=1, mode="nearest"), gauss, axis=0, mode="nearest"
    )
    gy = ndimage.convolve1d(
        ndimage.convolve1d(a, gauss, axis=1, mode="nearest"), dgauss, axis=0, mode="nearest"
    )
    return np.hypot(gx, gy)


def gradient_error_map(pred: np.ndarray, gt: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    """Per-pixel gradient error (|grad pred| - |grad gt|)^2, (H, W) float64."""
    return (gradient_magnitude(pred, sigma) - gradient_magnitude(gt, sigma)) ** 2


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a boolean (H, W) mask (the first in raster order on ties)."""
    labels, count = ndimage.label(mask)  # scipy's default 2-D structure is the 4-neighbour cross
    if count == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0  # label 0 is the background, never a component
    return labels == int(np.argmax(sizes))


def connectivity_error_map(
    pred: np.ndarray, gt: np.ndarray, step: float = 0.1, theta: float = 0.15
) -> np.ndarray:
    """Per-pixel connectivity error |phi(pred) - phi(gt)|, (H, W) float64.

    Args:
        pred: (H, W) predicted matte in [0, 1].
        gt: (H, W) ground-truth matte in [0, 1].
        step: threshold step; 1 / step must be an integer (0.1 gives thresholds 0.1, 0.2, ..., 1.0).
        theta: degree of connectivity below which a pixel counts as fully connected (0.15).
    """
    n = round(1.0 / step)
    if not math.isclose(n * step, 1.0):
        raise ValueError(f"connectivity step {step}: 1 / step must be an integer")
    # thresholds and mattes compared in float32 so that 8-bit values like 51/255 == 0.2 meet their threshold
    p32 = np.asarray(pred, dtype=np.float32)
    g32 = np.asarray(gt, dtype=np.float32)
    thresholds = np.arange(n + 1, dtype=np.float64) / n  # exact decimals 0, 0.1, ..., 1 (levels)
    thresholds32 = thresholds.astype(np.float32)  # the same values for comparisons
    level = np.full(p32.shape, -1.0, dtype=np.float64)
    for i in range(1, n + 1):
        omega = largest_component((p32 >= thresholds32[i]) & (g32 >= thresholds32[i]))
        level[(level == -1.0) & ~omega] = thresholds[i - 1]
    level[level == -1.0] = 1.0
    d_pred = p32.astype(np.float64) - level
    d_gt = g32.astype(np.float64) - level
    phi_pred = 1.0 - d_pred * (d_pred >= theta)
    phi_gt = 1.0 - d_gt * (d_gt >= theta)
    return np.abs(phi_pred - phi_gt)
