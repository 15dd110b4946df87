"""One-to-one matching of predicted to ground-truth mattes by mask IoU, shared by the instance metrics.

Every metric binarises the mattes and computes the IoU of every (prediction, person) pair; they differ in how
they pick the one-to-one pairs:

- E2E-HIM's Eq. 20 counts N_TH, the predictions matched to a person with IoU >= TH. `threshold_match` picks,
  separately for each TH, a one-to-one matching among the pairs with IoU >= TH that has the most pairs (so
  N_TH is maximal), and among those the largest summed IoU.
- InstMatt's IMQ (and the per-image report) use the one assignment with the largest total IoU
  (`hungarian_match`, `scipy.optimize.linear_sum_assignment`), then call a pair correct when IoU >= TH. That
  can undercount: maximising the sum may trade one pair above TH for two below it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from e2e_him.data.video_folder import frame_key  # numeric names by value ("0" == "00")

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
    if pred_masks.device.type == "cpu" and hasattr(np, "bitwise_count"):
        return torch.from_numpy(packed_iou(pred_masks.numpy(), gt_masks.numpy()))
    num_pixels = pred_masks.shape[-2] * pred_masks.shape[-1]
    dtype = torch.float32 if num_pixels < _FLOAT32_EXACT else torch.float64
    with no_autocast(pred_masks.device):
        p = pred_masks.flatten(1).to(dtype)  # (Kp, HW)
        g = gt_masks.flatten(1).to(dtype)  # (Kg, HW)
        inter = (p @ g.T).double()  # (Kp, Kg): 0/1 products are exact in any float matmul precision
        union = p.sum(1).double()[:, None] + g.sum(1).double()[None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1.0), torch.zeros_like(inter))


def packed_iou(pred_masks: np.ndarray, gt_masks: np.ndarray) -> np.ndarray:
    """`mask_iou` of CPU masks by bit counting: (Kp, H, W) and (Kg, H, W) bool -> (Kp, Kg) float64."""
    inter, p_area, g_area = mask_counts(pred_masks, gt_masks)
    union = p_area[:, None] + g_area[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def mask_counts(pred_masks: np.ndarray, gt_masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersections (Kp, Kg) and areas (Kp,), (Kg,) of bool masks, int64, by bit counting.

    Packing 8 pixels a byte and counting bits is exact and avoids converting the masks to floats, the slow
    part of a matrix product for megapixel photos (numpy >= 2: `np.bitwise_count`).
    """
    num_pixels = pred_masks.shape[-2] * pred_masks.shape[-1]
    if not hasattr(np, "bitwise_count"):  # numpy < 2: a float64 product (exact for counts below 2**53)
        pf = pred_masks.reshape(len(pred_masks), num_pixels).astype(np.float64)
        gf = gt_masks.reshape(len(gt_masks), num_pixels).astype(np.float64)
        return np.rint(pf @ gf.T).astype(np.int64), pf.sum(1).astype(np.int64), gf.sum(1).astype(np.int64)
    p = np.packbits(pred_masks.reshape(len(pred_masks), num_pixels), axis=1)  # (Kp, HW / 8) uint8
    g = np.packbits(gt_masks.reshape(len(gt_masks), num_pixels), axis=1)
    p_area = np.bitwise_count(p).sum(1, dtype=np.int64)
    g_area = np.bitwise_count(g).sum(1, dtype=np.int64)
    inter = np.zeros((len(p), len(g)), dtype=np.int64)
    for i in range(len(p)):
        for j in range(len(g)):
            inter[i, j] = np.bitwise_count(p[i] & g[j]).sum(dtype=np.int64)
    return inter, p_area, g_area


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


def threshold_match(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The pairs with IoU >= threshold of a one-to-one matching with the most such pairs (Eq. 20's N_TH).

    Among the matchings of maximum size, the one with the largest summed IoU is returned. Both are found by
    one assignment on the weights w = BIG + IoU for eligible pairs (IoU >= threshold) and 0 otherwise, with
    BIG = min(Kp, Kg) + 1 > any summed IoU: one more pair always outweighs any gain in IoU.

    Args:
        iou: (Kp, Kg) IoU matrix.
        threshold: the IoU a pair needs (> 0).

    Returns:
        pred_index, gt_index: (N_TH,) int64 arrays sorted by gt_index.
    """
    eligible = iou >= threshold
    empty = np.zeros(0, dtype=np.int64)
    if not eligible.any():
        return empty, empty
    big = float(min(iou.shape)) + 1.0
    weights = np.where(eligible, big + iou, 0.0)
    rows, cols = linear_sum_assignment(weights, maximize=True)
    keep = eligible[rows, cols]
    rows, cols = rows[keep], cols[keep]
    order = np.argsort(cols, kind="stable")
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


def iou_matrix(preds: Tensor, targets: Tensor, binarize_threshold: float) -> np.ndarray:
    """(Kp, Kg) float64 IoU of the masks alpha > binarize_threshold of one image's mattes."""
    return mask_iou(binarize(preds, binarize_threshold), binarize(targets, binarize_threshold)).cpu().numpy()


def match_instances(
    preds: Tensor, targets: Tensor, binarize_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binarise, compute IoUs and match one image's mattes one-to-one (Hungarian, largest summed IoU).

    Args:
        preds: (Kp, H, W) predicted mattes in [0, 1].
        targets: (Kg, H, W) ground-truth mattes in [0, 1].
        binarize_threshold: a pixel belongs to a person's mask when its alpha exceeds this.

    Returns:
        pred_index, gt_index, iou: (M,) arrays of the Hungarian pairs (M = min(Kp, Kg)) and their IoUs.
    """
    iou = iou_matrix(preds, targets, binarize_threshold)
    pred_index, gt_index = hungarian_match(iou)
    return pred_index, gt_index, iou[pred_index, gt_index]


def pair_by_name(pred_names: Sequence[str], gt_names: Sequence[str]) -> list[int | None]:
    """For each person, the index of the prediction with the same file name (numbers by value), or None."""
    where: dict[int | str, int] = {}
    for k, n in enumerate(pred_names):
        where.setdefault(frame_key(n), k)
    return [where.get(frame_key(n)) for n in gt_names]


def pair_by_iou(iou: np.ndarray) -> list[int | None]:
    """For each person (column of the (Kp, Kg) `iou`), its Hungarian prediction, or None (none, or IoU 0)."""
    out: list[int | None] = [None] * iou.shape[1]
    for p, g in zip(*hungarian_match(iou)):
        if iou[p, g] > 0:
            out[int(g)] = int(p)
    return out
