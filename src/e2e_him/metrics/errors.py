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
from collections.abc import Sequence

import cv2
import numpy as np


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
    return separable_gradient(alpha, cv2.BORDER_REPLICATE, sigma)


def separable_gradient(alpha: np.ndarray, border: int, sigma: float = 1.4, dtype=np.float64) -> np.ndarray:
    """|grad alpha| of the DIM kernels, applied as two 1-D filters with an OpenCV `border` mode, in `dtype`.

    hx = outer(gauss over rows, dgauss over columns) is the x-derivative, hy = hx.T the y-derivative.
    `cv2.sepFilter2D` correlates (it does not flip the kernels): with the antisymmetric dgauss that only
    changes the sign of gx and gy, not the magnitude.
    """
    gauss, dgauss = (k.astype(dtype) for k in gradient_kernels(sigma))
    a = np.asarray(alpha, dtype=dtype)
    depth = cv2.CV_64F if a.dtype == np.float64 else cv2.CV_32F
    gx = cv2.sepFilter2D(a, depth, dgauss, gauss, borderType=border)
    gy = cv2.sepFilter2D(a, depth, gauss, dgauss, borderType=border)
    return np.hypot(gx, gy)


def gradient_error_map(pred: np.ndarray, gt: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    """Per-pixel gradient error (|grad pred| - |grad gt|)^2, (H, W) float64."""
    return (gradient_magnitude(pred, sigma) - gradient_magnitude(gt, sigma)) ** 2


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a boolean (H, W) mask (the first in raster order on ties)."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros(mask.shape, dtype=bool)
    areas = stats[1:, cv2.CC_STAT_AREA]  # label 0 is the background, never a component
    best = np.flatnonzero(areas == areas.max()) + 1
    if len(best) > 1:  # a tie: the component whose first pixel comes first in raster order
        flat = labels.ravel()
        best = [min(best, key=lambda k: int(np.argmax(flat == k)))]
    return labels == int(best[0])


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
    thresholds32 = thresholds[1:].astype(np.float32)  # the same values for comparisons
    # how many thresholds each pixel of pred & gt reaches: {pred >= t_i} & {gt >= t_i} = {reach >= i}
    reach = np.minimum(
        np.searchsorted(thresholds32, p32, side="right"), np.searchsorted(thresholds32, g32, side="right")
    ).astype(np.int16)
    # the index of the last threshold before a pixel leaves the largest component (n: it never leaves)
    left = np.full(p32.shape, n, dtype=np.int16)
    omega, size = None, -1
    for i in range(1, n + 1):
        inside = reach >= i
        count = int(np.count_nonzero(inside))
        if count == 0:  # nothing left at this threshold: every remaining pixel leaves now
            left[left == n] = i - 1
            break
        if count != size:  # the sets shrink with i: the same count is the same set, the same component
            omega, size = largest_component(inside), count
        left[(left == n) & ~omega] = i - 1
    level = thresholds[left]
    d_pred = p32.astype(np.float64) - level
    d_gt = g32.astype(np.float64) - level
    phi_pred = 1.0 - d_pred * (d_pred >= theta)
    phi_gt = 1.0 - d_gt * (d_gt >= theta)
    return np.abs(phi_pred - phi_gt)


def nonzero_box(mattes: Sequence[np.ndarray], margin: int = 0) -> tuple[slice, slice] | None:
    """The bounding box of the pixels where any of the (H, W) `mattes` is non-zero, grown by `margin`.

    Returns (rows, cols) slices clipped to the image, or None when every matte is zero everywhere.
    """
    any_rows = np.zeros(mattes[0].shape[0], dtype=bool)
    any_cols = np.zeros(mattes[0].shape[1], dtype=bool)
    for m in mattes:
        nz = m != 0
        any_rows |= nz.any(1)
        any_cols |= nz.any(0)
    if not any_rows.any():
        return None
    r = np.flatnonzero(any_rows)
    c = np.flatnonzero(any_cols)
    h, w = any_rows.shape[0], any_cols.shape[0]
    return (
        slice(max(int(r[0]) - margin, 0), min(int(r[-1]) + 1 + margin, h)),
        slice(max(int(c[0]) - margin, 0), min(int(c[-1]) + 1 + margin, w)),
    )


def grad_conn_sums(pred: np.ndarray, gt: np.ndarray, region_threshold: float = 0.0) -> dict[str, float]:
    """Sums of the DIM gradient and connectivity error maps of a pair, over the image and over the union.

    Both maps are exactly zero where pred and gt are zero in a 9 x 9 neighbourhood (gradient) or at the pixel
    (connectivity), so they are computed on the bounding box of the non-zero pixels, grown by the gradient
    kernel's half-size: the sums equal those of `gradient_error_map` / `connectivity_error_map` on the
    whole image (a test checks it), at a fraction of the cost for people smaller than the photo.

    Args:
        pred, gt: (H, W) mattes in [0, 1].
        region_threshold: the union is {pred > t} | {gt > t} (InstMatt's IMQ: t = 0).

    Returns:
        {"grad", "conn"}: sums over all pixels; {"grad_union", "conn_union"}: sums over the union.
    """
    pred = np.asarray(pred, dtype=np.float32)
    gt = np.asarray(gt, dtype=np.float32)
    half = len(gradient_kernels()[0]) // 2
    box = nonzero_box([pred, gt], margin=half)
    if box is None:
        return {"grad": 0.0, "conn": 0.0, "grad_union": 0.0, "conn_union": 0.0}
    p, g = pred[box], gt[box]
    union = (p > region_threshold) | (g > region_threshold)
    grad = gradient_error_map(p, g)
    conn = connectivity_error_map(p, g)
    return {
        "grad": float(grad.sum()),
        "conn": float(conn.sum()),
        "grad_union": float(grad[union].sum()),
        "conn_union": float(conn[union].sum()),
    }
