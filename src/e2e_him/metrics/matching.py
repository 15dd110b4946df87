"""One-to-one matching of predicted to ground-truth mattes by mask IoU, shared by both instance metrics.

Both E2E-HIM's metrics (Eq. 20) and InstMatt's IMQ decide which predicted matte belongs to which person the
same way: binarise every matte, compute the IoU of every (prediction, person) pair, and pick the one-to-one
assignment with the largest total IoU (Hungarian algorithm, `scipy.optimize.linear_sum_assignment`). A pair is
then *correct* at threshold TH when its IoU >= TH. They differ only in the binarisation threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

# Exact float32 counts need sums below 2**24; larger images fall back to float64.
_FLOAT32_EXACT = 2**24


def format_threshold(th: float) -> str:
    """The text of an IoU threshold in metric keys: 0.5 -> "0.5", 0.75 -> "0.75" (`f"{th:g}"`)."""
    return f"{th:g}"


def check_thresholds(iou_thresholds: Sequence[float]) -> tuple[float, ...]:
    """Validate IoU thresholds: a non-empty sequence of distinct values in (0, 1]."""
    ths = tuple(float(t) for t in iou_thresholds)
    if not ths:
        raise ValueError("iou_thresholds is empty: give at least one IoU threshold, e.g. (0.5, 0.75)")
    for t in ths:
        if not 0.0 < t <= 1.0:
            raise ValueError(
                f"iou_thresholds: {t} is outside (0, 1]; a pair of IoU 0 must never count as correct"
            )
    if len(set(ths)) != len(ths):
        raise ValueError(f"iou_thresholds: {ths} has repeated values")
    return ths


def check_binarize_threshold(binarize_threshold: float) -> float:
    """Validate the alpha level above which a matte counts as mask: a value in [0, 1)."""
    if not 0.0 <= binarize_threshold < 1.0:
        raise ValueError(f"binarize_threshold {binarize_threshold} must lie in [0, 1)")
    return float(binarize_threshold)


def check_instance_inputs(preds: Sequence[Tensor], targets: Sequence[Tensor]) -> None:
    """Check `update(preds, targets)`: equal-length lists of (K, H, W) tensors, sizes equal per image."""
    if len(preds) != len(targets):
        raise ValueError(
            f"got {len(preds)} predictions but {len(targets)} targets: one entry per image in both"
        )
    for i, (p, t) in enumerate(zip(preds, targets)):
        if p.ndim != 3 or t.ndim != 3:
            raise ValueError(
                f"image {i}: predictions {tuple(p.shape)} and targets {tuple(t.shape)} must both be (K, H, W)"
            )
        if p.shape[-2:] != t.shape[-2:]:
            raise ValueError(
                f"image {i}: prediction size {tuple(p.shape[-2:])} differs from target size "
                f"{tuple(t.shape[-2:])}"
            )


def no_autocast(device: torch.device):
    """A context that turns autocast off on `device` (counts must not be computed in float16)."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # a device type without autocast support
        return nullcontext()


def binarize(alphas: Tensor, threshold: float) -> Tensor:
    """Instance masks of mattes: alpha > threshold (threshold 0 gives InstMatt's rule alpha > 0)."""
    return alphas > threshold


def mask_iou(pred_masks: Tensor, gt_masks: Tensor) -> Tensor:
    """IoU of every pair of binary masks; a pair whose union is empty has IoU 0.

    Args:
        pred_masks: (Kp, H, W) bool.
        gt_masks: (Kg, H, W) bool, same H, W.

    Returns:
        (Kp, Kg) float64 IoU on the masks' device.
    """
    num_pixels = pred_masks.shape[-2] * pred_masks.shape[-1]
    dtype = torch.float32 if num_pixels < _FLOAT32_EXACT else torch.float64
    with no_autocast(pred_masks.device):
        p = pred_masks.flatten(1).to(dtype)  # (Kp, HW)
        g = gt_masks.flatten(1).to(dtype)  # (Kg, HW)
        inter = (p @ g.T).double()  # (Kp, Kg): 0/1 products are exact in any float matmul precision
        union = p.sum(1).double()[:, None] + g.sum(1).double()[None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1.0), torch.zeros_like(inter))


def hungarian_match(iou: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one assignment maximising the summed IoU (min(Kp, Kg) pairs).

    Args:
        iou: (Kp, Kg) IoU matrix.

    Returns:
        pred_index, gt_index: (M,) int64 arrays, M = min(Kp, Kg), sorted by gt_index.
    """
    if iou.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    rows, cols = linear_sum_assignment(iou, maximize=True)
    order = np.argsort(cols, kind="stable")
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


def match_instances(
    preds: Tensor, targets: Tensor, binarize_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binarise, compute IoUs and match one image's mattes one-to-one.

    Args:
        preds: (Kp, H, W) predicted mattes in [0, 1].
        targets: (Kg, H, W) ground-truth mattes in [0, 1].
        binarize_threshold: a pixel belongs to a person's mask when its alpha exceeds this.

    Returns:
        pred_index, gt_index, iou: (M,) arrays of the Hungarian pairs (M = min(Kp, Kg)) and their IoUs.
    """
    iou = mask_iou(binarize(preds, binarize_threshold), binarize(targets, binarize_threshold)).cpu().numpy()
    pred_index, gt_index = hungarian_match(iou)
    return pred_index, gt_index, iou[pred_index, gt_index]
