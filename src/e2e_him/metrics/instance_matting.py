"""The paper's human instance matting metrics ACC, REC, EMSE and EMAD at IoU thresholds (Eq. 20).

    ACC_TH  = N_TH / N_pred        REC_TH = N_TH / N_gt
    EMSE_TH = 1 / N_TH * sum_{i in Omega_TH} mean_{j in Pi_i} (alpha_pred^{i,j} - alpha_gt^{i,j})^2
    EMAD_TH = 1 / N_TH * sum_{i in Omega_TH} mean_{j in Pi_i} |alpha_pred^{i,j} - alpha_gt^{i,j}|

Choices where the paper is silent (docs/metrics.md gives the reasons):
- for each TH separately, predictions are matched to people one-to-one among the pairs with IoU >= TH so that
  N_TH is as large as possible (ties: the largest summed IoU), `matching.threshold_match`;
- IoU is computed on masks alpha > `binarize_threshold` (0.5 by default; 0 gives InstMatt's alpha > 0);
- a pair is correct at TH when IoU >= TH (the paper writes "higher than"; >= is the COCO and InstMatt
  convention and differs only for IoU exactly equal to TH);
- Pi_i is every pixel of the image, so a matte's error is its mean over H * W pixels;
- counts and error sums are accumulated over the whole data set before dividing;
- no NaN: ACC = 0 when N_pred = 0, REC = 0 when N_gt = 0, and EMSE = EMAD = `empty_error` (1.0, the worst
  possible per-pixel error of mattes in [0, 1]) when no pair is correct.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from e2e_him.metrics.errors import nonzero_box
from e2e_him.metrics.matching import (
    check_binarize_threshold,
    check_instance_inputs,
    check_thresholds,
    format_threshold,
    hungarian_match,
    iou_matrix,
    no_autocast,
    threshold_match,
)
from e2e_him.metrics.precomputed import Precomputed


@dataclass(frozen=True)
class Pairs:
    """Matched (prediction, person) pairs of one image and their errors over all H * W pixels.

    Attributes:
        pred_index: (M,) index of each pair's prediction.
        gt_index: (M,) index of each pair's person (ascending).
        iou: (M,) IoU of each pair's binarised masks.
        mse: (M,) mean squared error of each pair.
        mad: (M,) mean absolute error of each pair.
    """

    pred_index: np.ndarray
    gt_index: np.ndarray
    iou: np.ndarray
    mse: np.ndarray
    mad: np.ndarray

    def __len__(self) -> int:
        return len(self.gt_index)


@dataclass(frozen=True)
class InstanceMatch:
    """One image's matching: the Hungarian pairs (for reports) and Eq. 20's correct pairs per threshold.

    Attributes:
        num_pred: Kp, the number of predicted mattes.
        num_gt: Kg, the number of ground-truth people.
        hungarian: the min(Kp, Kg) pairs of the assignment with the largest summed IoU (passed or not).
        correct: {TH: the pairs of `threshold_match` at TH}, i.e. Omega_TH, N_TH = len(correct[TH]).
    """

    num_pred: int
    num_gt: int
    hungarian: Pairs
    correct: dict[float, Pairs]

    def at(self, iou_threshold: float) -> Pairs:
        """Omega_TH: the correct pairs at `iou_threshold` (one of the thresholds the match was built for)."""
        try:
            return self.correct[float(iou_threshold)]
        except KeyError:
            raise KeyError(
                f"IoU threshold {iou_threshold} not matched; thresholds: {sorted(self.correct)}"
            ) from None


def _pair_errors(
    preds: Tensor, targets: Tensor, pred_index: np.ndarray, gt_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(M,) MSE and MAD over all H * W pixels of the pairs (pred_index[m], gt_index[m])."""
    if len(pred_index) == 0:
        empty = np.zeros(0, dtype=np.float64)
        return empty, empty
    if preds.device.type == "cpu" and targets.device.type == "cpu":
        return _pair_errors_on_boxes(preds, targets, pred_index, gt_index)
    return _pair_errors_dense(preds, targets, pred_index, gt_index)


def _pair_errors_on_boxes(preds, targets, pred_index, gt_index) -> tuple[np.ndarray, np.ndarray]:
    """CPU: each pair on the bounding box of its non-zero pixels (outside it both mattes are 0)."""
    num_pixels = preds.shape[-2] * preds.shape[-1]  # |Pi_i| = H * W
    mse, mad = np.zeros(len(pred_index)), np.zeros(len(pred_index))
    p_all, g_all = preds.float().numpy(), targets.float().numpy()
    for m, (i, j) in enumerate(zip(pred_index, gt_index)):
        box = nonzero_box([p_all[i], g_all[j]])
        if box is not None:
            d = p_all[i][box].astype(np.float64) - g_all[j][box].astype(np.float64)
            mse[m], mad[m] = np.square(d).sum() / num_pixels, np.abs(d).sum() / num_pixels
    return mse, mad


def _pair_errors_dense(preds, targets, pred_index, gt_index) -> tuple[np.ndarray, np.ndarray]:
    """Any device: (M, HW) differences in one go, summed in float64."""
    num_pixels = preds.shape[-2] * preds.shape[-1]
    with no_autocast(preds.device):
        idx_p = torch.as_tensor(pred_index, device=preds.device)
        idx_g = torch.as_tensor(gt_index, device=targets.device)
        matched_gt = targets[idx_g].to(preds.device).float().flatten(1)  # (M, HW)
        diff = preds[idx_p].float().flatten(1) - matched_gt  # (M, HW)
        mse = (diff.square().sum(1, dtype=torch.float64) / num_pixels).cpu().numpy()
        mad = (diff.abs().sum(1, dtype=torch.float64) / num_pixels).cpu().numpy()
    return mse, mad


def match_image(
    preds: Tensor,
    targets: Tensor,
    binarize_threshold: float = 0.5,
    iou_thresholds: Sequence[float] = (0.5, 0.75),
    iou: np.ndarray | None = None,
) -> InstanceMatch:
    """Match one image's predicted mattes to its people and measure every matched pair (Eq. 20's terms).

    Args:
        preds: (Kp, H, W) predicted mattes in [0, 1]; Kp may be 0.
        targets: (Kg, H, W) ground-truth mattes in [0, 1]; Kg may be 0.
        binarize_threshold: IoU is computed on masks alpha > binarize_threshold.
        iou_thresholds: the TH of Eq. 20; each gets its own maximal matching.
        iou: the (Kp, Kg) IoU matrix at `binarize_threshold` when already computed.
    """
    if iou is None:
        iou = iou_matrix(preds, targets, binarize_threshold)  # (Kp, Kg)
    sets = {"hungarian": hungarian_match(iou)}
    for th in iou_thresholds:
        sets[float(th)] = threshold_match(iou, float(th))
    # errors of every distinct pair, computed once
    pairs = sorted({(int(p), int(g)) for p_idx, g_idx in sets.values() for p, g in zip(p_idx, g_idx)})
    p_all = np.array([p for p, _ in pairs], dtype=np.int64)
    g_all = np.array([g for _, g in pairs], dtype=np.int64)
    mse_all, mad_all = _pair_errors(preds, targets, p_all, g_all)
    where = {pair: k for k, pair in enumerate(pairs)}

    def build(p_idx: np.ndarray, g_idx: np.ndarray) -> Pairs:
        k = np.array([where[(int(p), int(g))] for p, g in zip(p_idx, g_idx)], dtype=np.int64)
        return Pairs(p_idx, g_idx, iou[p_idx, g_idx], mse_all[k], mad_all[k])

    hungarian = build(*sets.pop("hungarian"))
    return InstanceMatch(
        num_pred=int(preds.shape[0]),
        num_gt=int(targets.shape[0]),
        hungarian=hungarian,
        correct={th: build(*ij) for th, ij in sets.items()},
    )


class InstanceMattingMetrics(Metric):
    """EMSE, EMAD, REC and ACC at each IoU threshold (Eq. 20), accumulated over a data set.

    `update(preds, targets)` takes one entry per image: `preds[i]` (Kp, H, W) and `targets[i]` (Kg, H, W),
    float in [0, 1]. `compute()` returns flat keys `EMSE_0.5`, `EMAD_0.5`, `REC_0.5`, `ACC_0.5`, `EMSE_0.75`,
    ... as float64 scalars. All states are sums, so cross-process reduction and `merge_state` are exact.

    Args:
        iou_thresholds: the TH values; the paper uses 0.5 and 0.75.
        binarize_threshold: IoU is computed on masks alpha > binarize_threshold.
        empty_error: EMSE/EMAD reported when no pair is correct at a threshold (no NaN in logs).
    """

    is_differentiable = False
    higher_is_better = None  # mixed: ACC/REC higher, EMSE/EMAD lower
    full_state_update = False

    def __init__(
        self,
        iou_thresholds: Sequence[float] = (0.5, 0.75),
        binarize_threshold: float = 0.5,
        empty_error: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.iou_thresholds = check_thresholds(iou_thresholds)
        self.binarize_threshold = check_binarize_threshold(binarize_threshold)
        self.empty_error = float(empty_error)
        n = len(self.iou_thresholds)
        self.add_state("num_pred", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("num_gt", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("num_correct", torch.zeros(n, dtype=torch.int64), dist_reduce_fx="sum")  # N_TH
        self.add_state("sum_mse", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sum_mad", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Sequence[Tensor] | Precomputed, targets: Sequence[Tensor] = ()) -> None:
        """Match and accumulate a batch of images (one list entry per image), or add `Precomputed` matches."""
        if isinstance(preds, Precomputed):
            self._add(preds.stats)
            return
        check_instance_inputs(preds, targets)
        for p, t in zip(preds, targets):
            self._add(match_image(p.detach(), t.detach(), self.binarize_threshold, self.iou_thresholds))

    def accumulate(self, match: InstanceMatch) -> None:
        """Add one image's counts and error sums (from `match_image`, e.g. run in a worker), via `update`."""
        self.update(Precomputed(match))

    def _add(self, match: InstanceMatch) -> None:
        dev = self.num_correct.device
        per_th = [match.at(th) for th in self.iou_thresholds]
        self.num_pred += match.num_pred
        self.num_gt += match.num_gt
        self.num_correct += torch.tensor([len(c) for c in per_th], dtype=torch.int64, device=dev)
        self.sum_mse += torch.tensor([float(c.mse.sum()) for c in per_th], dtype=torch.float64, device=dev)
        self.sum_mad += torch.tensor([float(c.mad.sum()) for c in per_th], dtype=torch.float64, device=dev)

    def compute(self) -> dict[str, Tensor]:
        """ACC_TH = N_TH / N_pred, REC_TH = N_TH / N_gt, EMSE_TH / EMAD_TH = error sums / N_TH (Eq. 20)."""
        n_th = self.num_correct.double()
        n_pred = self.num_pred.double()
        n_gt = self.num_gt.double()
        zero = torch.zeros_like(n_th)
        acc = torch.where(n_pred > 0, n_th / n_pred.clamp_min(1.0), zero)
        rec = torch.where(n_gt > 0, n_th / n_gt.clamp_min(1.0), zero)
        empty = torch.full_like(n_th, self.empty_error)
        emse = torch.where(n_th > 0, self.sum_mse / n_th.clamp_min(1.0), empty)
        emad = torch.where(n_th > 0, self.sum_mad / n_th.clamp_min(1.0), empty)
        out: dict[str, Tensor] = {}
        for k, th in enumerate(self.iou_thresholds):
            s = format_threshold(th)
            out[f"EMSE_{s}"] = emse[k]
            out[f"EMAD_{s}"] = emad[k]
            out[f"REC_{s}"] = rec[k]
            out[f"ACC_{s}"] = acc[k]
        return out
