"""A second, slow implementation of MaGGIe's evaluation metrics, to check the fast one in `e2e_him.metrics`.

Written from the definitions in docs/metrics.md ("What MaGGIe's code computes"), not from any code: every
quantity on the whole image (no bounding boxes), in float64 where the docs do not fix a precision, and with
other tools than the fast implementation wherever there is a choice:

    quantity            here                                           e2e_him.metrics
    trimap              scipy max / min filters, ellipse from its rule   cv2.dilate / erode (uint8)
    Grad                2-D kernel np.outer(g, g') + scipy correlate     two 1-D OpenCV passes
    Conn                scipy labels, level = first threshold left       OpenCV components, running update
    MESSDdt             np.take on the flattened stack of frames 1..T-1  reads frame 1 directly

Every function returns what one call of MaGGIe's `update` adds to its (score, count) pair: the sum of the
people's values and the number of people.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

EPS = 1e-6  # the "+ 1e-6" of MaGGIe's denominators
TRIMAP_RADIUS = 12  # 25 x 25 ellipse
SIGMA = 1.4
THETA = 0.15
FARNEBACK = (0.5, 5, 10, 2, 7, 1.5, cv2.OPTFLOW_FARNEBACK_GAUSSIAN)


# --- images ---------------------------------------------------------------------------------------------


def ellipse(radius: int = TRIMAP_RADIUS) -> np.ndarray:
    """(2r+1, 2r+1) bool disc: row dy holds the columns |dx| <= round(sqrt(r^2 - dy^2)) (OpenCV's rule)."""
    offsets = np.arange(-radius, radius + 1)
    reach = np.rint(np.sqrt(radius**2 - offsets**2))  # half-width of each row
    return np.abs(offsets)[None, :] <= reach[:, None]


def trimap(alpha: np.ndarray) -> np.ndarray:
    """(H, W) uint8: 1 where alpha is not constant over the ellipse around the pixel (pixels outside the
    image ignored), else 2 where alpha > 0.5, else 0."""
    a = np.asarray(alpha, dtype=np.float64)
    disc = ellipse()
    hi = ndimage.maximum_filter(a, footprint=disc, mode="constant", cval=-np.inf)
    lo = ndimage.minimum_filter(a, footprint=disc, mode="constant", cval=np.inf)
    return np.where(hi > lo, 1, np.where(a > 0.5, 2, 0)).astype(np.uint8)


def size_scaled_mean(err: np.ndarray, region: np.ndarray) -> float:
    """MaGGIe's scale of a per-pixel error over a region R: sum_R err / (HW (|R| + 1e-6)) * 1e10."""
    return float(np.sum(err[region]) / (err.size * (np.count_nonzero(region) + EPS)) * 1e10)


def derivative_kernels(sigma: float = SIGMA, eps: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """(d/dx, d/dy) kernels: g(row) g'(column) on offsets -h..h, h = ceil(sigma sqrt(-2 ln(sqrt(2 pi) sigma
    eps))), scaled to unit L2 norm; the d/dy kernel is its transpose."""
    h = int(np.ceil(sigma * np.sqrt(-2.0 * np.log(np.sqrt(2.0 * np.pi) * sigma * eps))))
    t = np.arange(-h, h + 1, dtype=np.float64)
    g = np.exp(-(t**2) / (2.0 * sigma**2)) / (sigma * np.sqrt(2.0 * np.pi))
    dx = np.outer(g, -t / sigma**2 * g)
    dx /= np.linalg.norm(dx)
    return dx, dx.T


def gradient_magnitude(x: np.ndarray) -> np.ndarray:
    """|grad x| with the derivative kernels as correlations, zero outside the image."""
    x = np.asarray(x, dtype=np.float64)
    parts = [ndimage.correlate(x, k, mode="constant", cval=0.0) for k in derivative_kernels()]
    return np.hypot(*parts)


def stack_normalised(stack: np.ndarray) -> np.ndarray:
    """(x - min) / (max - min + 1e-6) with one min and max for the whole (N, H, W) stack."""
    s = np.asarray(stack, dtype=np.float64)
    return (s - s.min()) / (s.max() - s.min() + EPS)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a bool mask (the lowest label on ties; empty when none)."""
    labels, count = ndimage.label(mask)  # scipy's default structure in 2-D: the 4-neighbour cross
    if count == 0:
        return np.zeros(mask.shape, bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0  # the background is not a component
    return labels == int(np.argmax(sizes))


def connectivity_sum(pred: np.ndarray, gt: np.ndarray) -> float:
    """sum |phi_p - phi_g| of one person (float32 mattes, float64 thresholds t_i = 0.1 i, float32 levels)."""
    t = 0.1 * np.arange(11)  # t_0 = 0, ..., t_10 = 1
    inside = np.stack([largest_component((pred >= ti) & (gt >= ti)) for ti in t[1:]])  # (10, H, W)
    outside = ~inside
    # level: t_(i-1) for the first threshold t_i whose component does not hold the pixel, 1 if none
    level = np.where(outside.any(0), t[np.argmax(outside, axis=0)], 1.0).astype(np.float32)

    def phi(a: np.ndarray) -> np.ndarray:
        d = a - level
        return 1 - d * (d >= THETA)

    return float(np.abs(phi(pred) - phi(gt)).astype(np.float64).sum())


def image_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, tuple[float, int]]:
    """(score, count) of every metric of MaGGIe's image evaluation for one image's paired (N, H, W) mattes."""
    pred = np.asarray(pred, dtype=np.float32)
    gt = np.asarray(gt, dtype=np.float32)
    per_person: dict[str, list[float]] = {}
    for p, g in zip(pred, gt):
        d = np.abs(p.astype(np.float64) - g.astype(np.float64))
        tri = trimap(g)
        values = {
            "MAD": size_scaled_mean(d, np.ones(d.shape, bool)),
            "MSE": size_scaled_mean(d**2, np.ones(d.shape, bool)),
            "SAD": float(d.sum()) * 1e-3,
            "Conn": connectivity_sum(p, g) * 1e-3,
            "MADf": size_scaled_mean(d, tri == 2),
            "MADb": size_scaled_mean(d, tri == 0),
            "MADu": size_scaled_mean(d, tri == 1),
        }
        for key, v in values.items():
            per_person.setdefault(key, []).append(v)
    pn, gn = stack_normalised(pred), stack_normalised(gt)
    per_person["Grad"] = [
        float(np.sum((gradient_magnitude(g) - gradient_magnitude(p)) ** 2)) * 1e-3 for p, g in zip(pn, gn)
    ]
    return {key: (float(sum(v)), len(gt)) for key, v in per_person.items()}


# --- videos: (T, N, H, W) frames of one group -----------------------------------------------------------


def dtssd(pred: np.ndarray, gt: np.ndarray) -> tuple[float, int]:
    """Per person 0.1 sqrt(sum over the T-1 frame pairs and pixels of D_t^2), D_t the change of the error."""
    err = pred.astype(np.float64) - gt.astype(np.float64)
    change = err[1:] - err[:-1]  # D_t = (p_t+1 - p_t) - (g_t+1 - g_t), (T-1, N, H, W)
    return float(np.sum(0.1 * np.sqrt(np.einsum("tnhw,tnhw->n", change, change)))), gt.shape[1]


def ground_truth_flow(frame: np.ndarray, following: np.ndarray) -> np.ndarray:
    """(H, W, 2) Farneback flow (column, row components) of two float32 mattes as truncated 8-bit images."""
    a, b = ((np.asarray(m, np.float32) * np.float32(255)).astype(np.uint8) for m in (frame, following))
    return cv2.calcOpticalFlowFarneback(a, b, None, *FARNEBACK)


def messddt(pred: np.ndarray, gt: np.ndarray) -> tuple[float, int]:
    """Per person 1e4 sum_t sum_pixels |E_t^2 - S[idx_t]| / ((T-1) (HW + 1)) with E = p - g, S the flattened
    (T-1, H, W) stack of E_1^2 .. E_(T-1)^2 and, at pixel (row y, column x),
    idx_t = clamp(x + v_x, 0, H-1) W + clamp(y + v_y, 0, W-1), v_t the rounded ground-truth flow t -> t+1."""
    frames, people, h, w = gt.shape
    y, x = np.indices((h, w))
    score = 0.0
    for n in range(people):
        e2 = (pred[:, n].astype(np.float64) - gt[:, n].astype(np.float64)) ** 2  # (T, H, W)
        stack = e2[1:].ravel()
        total = 0.0
        for t in range(frames - 1):
            v = np.rint(ground_truth_flow(gt[t, n], gt[t + 1, n])).astype(np.int64)
            idx = np.clip(x + v[..., 0], 0, h - 1) * w + np.clip(y + v[..., 1], 0, w - 1)
            total += float(np.abs(e2[t] - np.take(stack, idx)).sum())
        score += total / ((frames - 1) * (h * w + 1.0)) * 1e4
    return score, people
