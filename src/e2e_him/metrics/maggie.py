"""MaGGIe's per-instance matting errors (Huynh et al., CVPR 2024), at MaGGIe's own scale and the usual one.

MaGGIe scores each person's matte against its ground truth and averages over all people of the data set:
MAD, MSE, SAD, Grad, Conn and MAD inside the foreground / background / unknown region of a trimap built from
the ground truth. Its code (`maggie/utils/metric.py`) scales MAD and MSE by the image size; docs/metrics.md
derives every formula from it. Here, per person, with d = pred - gt, HW the image's pixel count and R a
trimap region:

    key             MaGGIe's scale (`*_maggie`)               usual scale
    MAD             sum |d| / (HW (HW + 1e-6)) * 1e10          MAD_x1e3   = mean |d| * 1e3
    MSE             sum d^2 / (HW (HW + 1e-6)) * 1e10          MSE_x1e3   = mean d^2 * 1e3
    SAD             sum |d| * 1e-3                             SAD_x1e-3  = the same
    Grad            sum (|grad n(g)| - |grad n(p)|)^2 * 1e-3   Grad_x1e-3 = sum (|grad p| - |grad g|)^2 * 1e-3
    Conn            sum |phi_p - phi_g| * 1e-3                 Conn_x1e-3 = the same
    MADf/MADb/MADu  sum_R |d| / (HW (|R| + 1e-6)) * 1e10       MADf_x1e3 ... = mean_R |d| * 1e3

MaGGIe's Grad min-max normalises (n(x) = (x - min) / (max - min + 1e-6), min and max over all people of the
image at once, predictions and ground truth each with their own) and pads with zeros; the usual Grad is the
DIM benchmark's (no normalisation, borders replicated). The trimap (`maggie_trimap`): 2 (foreground) where
alpha > 0.5, then 1 (unknown) where the 25 x 25 elliptical dilation and erosion of alpha differ, else 0. An
empty region gives 0 at MaGGIe's scale (counted, as in MaGGIe) and is left out of the usual-scale mean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from e2e_him.metrics.errors import grad_conn_sums, nonzero_box, separable_gradient
from e2e_him.metrics.matching import iou_matrix, pair_by_iou
from e2e_him.metrics.precomputed import Precomputed

TRIMAP_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (25, 25))  # MaGGIe's gen_transition_gt
TRIMAP_RADIUS = 12
MAGGIE_EPS = 1e-6  # MaGGIe's "+ 1e-6" in the denominators
REGIONS = ("f", "b", "u")  # foreground (trimap 2), background (0), unknown (1)
MAGGIE_KEYS = ("MAD", "MSE", "SAD", "Grad", "Conn", "MADf", "MADb", "MADu")
USUAL_KEYS = {
    "MAD": "MAD_x1e3",
    "MSE": "MSE_x1e3",
    "SAD": "SAD_x1e-3",
    "Grad": "Grad_x1e-3",
    "Conn": "Conn_x1e-3",
    "MADf": "MADf_x1e3",
    "MADb": "MADb_x1e3",
    "MADu": "MADu_x1e3",
}
SLOW_KEYS = ("Grad", "Conn")


def metric_keys(grad_conn: bool = True) -> list[str]:
    """The flat keys of the per-instance errors: MaGGIe's scale first, then the usual scale."""
    base = [k for k in MAGGIE_KEYS if grad_conn or k not in SLOW_KEYS]
    return [f"{k}_maggie" for k in base] + [USUAL_KEYS[k] for k in base]


def maggie_trimap(gt: np.ndarray) -> np.ndarray:
    """MaGGIe's evaluation trimap of one ground-truth matte: (H, W) uint8, 0 bg / 1 unknown / 2 fg.

    fg = alpha > 0.5; unknown = the 25 x 25 elliptical (OpenCV MORPH_ELLIPSE) dilation of alpha differs from
    its erosion, i.e. alpha is not constant in that neighbourhood (outside the image is ignored, as
    `cv2.dilate` does); unknown overrides fg.
    """
    gt = np.asarray(gt, dtype=np.float32)
    codes = np.round(gt * 255.0).astype(np.uint8)
    # 8-bit mattes are dilated as uint8 (faster, identical: k/255 <-> k is monotone and one-to-one)
    src = codes if np.array_equal(codes.astype(np.float32) / np.float32(255.0), gt) else gt
    unknown = cv2.dilate(src, TRIMAP_KERNEL) != cv2.erode(src, TRIMAP_KERNEL)
    trimap = np.where(gt > 0.5, 2, 0).astype(np.uint8)
    trimap[unknown] = 1
    return trimap


def maggie_gradient_magnitude(x: np.ndarray) -> np.ndarray:
    """|grad x| as MaGGIe's Grad computes it: the DIM kernels (correlation) with zero padding, in float32."""
    return separable_gradient(x, cv2.BORDER_CONSTANT, dtype=np.float32)


def minmax_scale(mattes: Sequence[np.ndarray]) -> tuple[float, float]:
    """(min, max - min + 1e-6) over all of `mattes` together: MaGGIe's Grad normalisation of one image."""
    if not len(mattes):
        return 0.0, MAGGIE_EPS
    lo = min(float(m.min()) for m in mattes)
    hi = max(float(m.max()) for m in mattes)
    return lo, hi - lo + MAGGIE_EPS


def pair_quantities(
    pred: np.ndarray,
    gt: np.ndarray,
    grad_conn: bool = True,
    pred_scale: tuple[float, float] = (0.0, 1.0 + MAGGIE_EPS),
    gt_scale: tuple[float, float] = (0.0, 1.0 + MAGGIE_EPS),
    dim_sums: dict[str, float] | None = None,
) -> dict[str, float]:
    """The raw sums from which both scales of one person's errors follow (see `errors_from_quantities`).

    Everything is computed on the bounding box of the non-zero pixels grown by the trimap radius (12 px),
    which gives the same sums as the whole image: outside it pred = gt = 0, the trimap is background and
    both gradients vanish.

    Args:
        pred, gt: (H, W) mattes in [0, 1] (pred all zero for a missed person).
        grad_conn: also the gradient and connectivity sums (slow).
        pred_scale, gt_scale: (min, range) of MaGGIe's Grad normalisation (`minmax_scale` of the image).
        dim_sums: `grad_conn_sums(pred, gt)` when already computed (IMQ shares it); computed otherwise.

    Returns:
        hw, abs, sq, abs_f/b/u, n_f/b/u and, with grad_conn, grad_dim, grad_maggie, conn.
    """
    pred = np.asarray(pred, dtype=np.float32)
    gt = np.asarray(gt, dtype=np.float32)
    h, w = gt.shape
    out = {"hw": float(h * w)}
    box = nonzero_box([pred, gt], margin=TRIMAP_RADIUS)
    if box is None:
        out.update(abs=0.0, sq=0.0, abs_f=0.0, abs_b=0.0, abs_u=0.0, n_f=0.0, n_b=float(h * w), n_u=0.0)
    else:
        p, g = pred[box], gt[box]
        d = np.abs(p.astype(np.float64) - g.astype(np.float64))
        trimap = maggie_trimap(g)
        fg, unknown = trimap == 2, trimap == 1
        out.update(abs=float(d.sum()), sq=float(np.square(d).sum()))
        out.update(abs_f=float(d[fg].sum()), abs_u=float(d[unknown].sum()))
        out.update(n_f=float(fg.sum()), n_u=float(unknown.sum()))
        out["abs_b"] = out["abs"] - out["abs_f"] - out["abs_u"]
        out["n_b"] = out["hw"] - out["n_f"] - out["n_u"]
    if not grad_conn:
        return out
    sums = dim_sums if dim_sums is not None else grad_conn_sums(pred, gt)
    out["grad_dim"], out["conn"] = sums["grad"], sums["conn"]
    out["grad_maggie"] = _maggie_grad_sum(pred, gt, box, pred_scale, gt_scale)
    return out


def _maggie_grad_sum(
    pred: np.ndarray,
    gt: np.ndarray,
    box: tuple[slice, slice] | None,
    pred_scale: tuple[float, float],
    gt_scale: tuple[float, float],
) -> float:
    """sum (|grad n(gt)| - |grad n(pred)|)^2 with zero padding; on `box` when n(0) = 0 for both."""
    if pred_scale[0] != 0.0 or gt_scale[0] != 0.0:
        box = (slice(None), slice(None))  # a non-zero background has gradients at the zero-padded border
    elif box is None:
        return 0.0
    p = (pred[box].astype(np.float32) - np.float32(pred_scale[0])) / np.float32(pred_scale[1])
    g = (gt[box].astype(np.float32) - np.float32(gt_scale[0])) / np.float32(gt_scale[1])
    diff = maggie_gradient_magnitude(g).astype(np.float64) - maggie_gradient_magnitude(p)
    return float(np.square(diff).sum())


def errors_from_quantities(q: dict[str, float]) -> dict[str, float]:
    """Both scales of one person's errors from `pair_quantities`; NaN where the usual value is undefined."""
    hw = q["hw"]
    scale = 1e10 / hw  # MaGGIe: mean over HW, divided again by the region size, times 1e10
    out = {
        "MAD_maggie": q["abs"] * scale / (hw + MAGGIE_EPS),
        "MSE_maggie": q["sq"] * scale / (hw + MAGGIE_EPS),
        "SAD_maggie": q["abs"] * 1e-3,
        "MAD_x1e3": q["abs"] / hw * 1e3,
        "MSE_x1e3": q["sq"] / hw * 1e3,
        "SAD_x1e-3": q["abs"] * 1e-3,
    }
    for r in REGIONS:
        n = q[f"n_{r}"]
        out[f"MAD{r}_maggie"] = q[f"abs_{r}"] * scale / (n + MAGGIE_EPS)
        out[f"MAD{r}_x1e3"] = q[f"abs_{r}"] / n * 1e3 if n > 0 else float("nan")
    if "conn" in q:
        out.update({"Grad_maggie": q["grad_maggie"] * 1e-3, "Conn_maggie": q["conn"] * 1e-3})
        out.update({"Grad_x1e-3": q["grad_dim"] * 1e-3, "Conn_x1e-3": q["conn"] * 1e-3})
    return out


def image_errors(
    preds: Sequence[np.ndarray | None],
    gts: Sequence[np.ndarray],
    grad_conn: bool = True,
    sums: Callable[[int], dict[str, float]] | None = None,
) -> dict[str, np.ndarray]:
    """Per-person errors of one image's paired mattes, both scales.

    Args:
        preds: M predicted (H, W) mattes, preds[m] paired with gts[m]; None for a missed person (scored
            against zero). MaGGIe's Grad normalisation takes min and max over all of them (missed as zero).
        gts: M ground-truth (H, W) mattes.
        grad_conn: include Grad and Conn.
        sums: m -> `grad_conn_sums` of pair m, when already computed (IMQ shares them).

    Returns:
        {key: (M,) float64} for `metric_keys(grad_conn)`.
    """
    filled = [p if p is not None else np.zeros_like(g) for p, g in zip(preds, gts)]
    p_scale, g_scale = minmax_scale(filled), minmax_scale(list(gts))
    rows = []
    for m, (p, g) in enumerate(zip(filled, gts)):
        dim = sums(m) if (sums is not None and grad_conn) else None
        rows.append(errors_from_quantities(pair_quantities(p, g, grad_conn, p_scale, g_scale, dim)))
    return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in metric_keys(grad_conn)}


class MaggieMetrics(Metric):
    """MaGGIe's per-instance MAD, MSE, SAD, Grad, Conn, MADf/b/u at both scales, averaged over all people.

    `update(preds, targets)`: one entry per image, `preds[i]` (Kp, H, W) and `targets[i]` (Kg, H, W).
    With `pairing="paired"` they are already paired one-to-one (Kp = Kg, MaGGIe's mask-guided protocol:
    prediction k is the matte of person k); with `pairing="iou"` each person gets its Hungarian partner on the
    IoU of masks alpha > 0.5 (a person without one, or with IoU 0, is scored against an all-zero matte;
    predictions without a person are not scored here). `compute()` returns `metric_keys(grad_conn)`; a
    usual-scale region key averages over the people whose region is not empty.

    Args:
        grad_conn: also Grad and Conn (CPU, the slow part).
        pairing: "paired" or "iou".
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, grad_conn: bool = True, pairing: str = "paired", **kwargs) -> None:
        super().__init__(**kwargs)
        if pairing not in ("paired", "iou"):
            raise ValueError(f"MaggieMetrics: pairing {pairing!r}, choose paired or iou")
        self.grad_conn = bool(grad_conn)
        self.pairing = pairing
        self.keys = metric_keys(self.grad_conn)
        n = len(self.keys)
        self.add_state("sums", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Sequence[Tensor] | Precomputed, targets: Sequence[Tensor] = ()) -> None:
        """Accumulate a batch of images, or add `Precomputed` per-person errors."""
        if isinstance(preds, Precomputed):
            self._add(preds.stats)
            return
        if len(preds) != len(targets):
            raise ValueError(f"got {len(preds)} predictions but {len(targets)} targets: one entry per image")
        for i, (p, t) in enumerate(zip(preds, targets)):
            if p.ndim != 3 or t.ndim != 3 or p.shape[-2:] != t.shape[-2:]:
                raise ValueError(f"image {i}: predictions {tuple(p.shape)} and targets {tuple(t.shape)}")
            pn = p.detach().float().cpu().numpy()
            tn = t.detach().float().cpu().numpy()
            if self.pairing == "paired":
                if len(pn) != len(tn):
                    raise ValueError(
                        f"image {i}: {len(pn)} predictions for {len(tn)} people (pairing=paired)"
                    )
                paired: list[np.ndarray | None] = list(pn)
            else:
                partner = pair_by_iou(iou_matrix(torch.from_numpy(pn), torch.from_numpy(tn), 0.5))
                paired = [pn[k] if k is not None else None for k in partner]
            self._add(image_errors(paired, list(tn), self.grad_conn))

    def accumulate(self, errors: dict[str, np.ndarray]) -> None:
        """Add per-person errors ({key: (M,)} from `image_errors`, e.g. from a worker), via `update`."""
        self.update(Precomputed(errors))

    def _add(self, errors: dict[str, np.ndarray]) -> None:
        values = np.stack([np.asarray(errors[k], dtype=np.float64) for k in self.keys])  # (n, M)
        ok = np.isfinite(values)
        dev = self.sums.device
        self.sums += torch.as_tensor(np.where(ok, values, 0.0).sum(1), dtype=torch.float64, device=dev)
        self.counts += torch.as_tensor(ok.sum(1), dtype=torch.float64, device=dev)

    def compute(self) -> dict[str, Tensor]:
        """Mean over people of every key (0 when no person was scored)."""
        zero = torch.zeros_like(self.sums)
        means = torch.where(self.counts > 0, self.sums / self.counts.clamp_min(1.0), zero)
        return {k: means[i] for i, k in enumerate(self.keys)}
