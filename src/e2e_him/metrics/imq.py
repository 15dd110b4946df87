"""Instance Matting Quality (IMQ) of InstMatt (Sun, Tang, Tai, CVPR 2022), as its released evaluation does it.

Per image: binarise every matte at alpha > 0, match predictions to people one-to-one (Hungarian on 1 - IoU),
and call a pair a true positive (TP) when IoU >= TH; unmatched or failing predictions are false positives
(FP), unmatched or failing people false negatives (FN). For every TP pair and every error E in {MAD, MSE,
Grad, Conn}, the error is averaged over the union U of the two masks, err = sum_U e / (|U| + 1), and turned
into a similarity s = 1 - min(10 * err, 1). Over the data set:

    IMQ_E = sum_TP s_E / (TP + 0.5 FP + 0.5 FN),   RQ = TP / (TP + 0.5 FP + 0.5 FN),   MQ_E = sum_TP s_E / TP

so IMQ = RQ * MQ. Per-pixel errors: |d| (MAD), d^2 (MSE), (|grad p| - |grad g|)^2 with the DIM benchmark's
Gaussian-derivative filters, sigma 1.4 (Grad), |phi_p - phi_g| with 4-connected components, thresholds
0.1 ... 1 and theta 0.15 (Conn); see `e2e_him.metrics.errors`. Where InstMatt's script would divide by zero we
report 0 (no NaN): MQ = 0 when TP = 0, IMQ = RQ = 0 when TP + FP + FN = 0. InstMatt adds 1e-6 to the IMQ
denominator; we do not, so a perfect prediction scores exactly 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from e2e_him.metrics.errors import grad_conn_sums
from e2e_him.metrics.matching import (
    check_binarize_threshold,
    check_instance_inputs,
    check_thresholds,
    format_threshold,
    match_instances,
)
from e2e_him.metrics.precomputed import Precomputed

ERROR_NAMES = ("mad", "mse", "grad", "conn")
SIMILARITY_SCALE = 10.0  # s = 1 - min(10 * err, 1)


def pair_similarities(
    pred: np.ndarray, gt: np.ndarray, binarize_threshold: float = 0.0, sums: dict[str, float] | None = None
) -> np.ndarray:
    """The four IMQ similarities of a matched pair: 1 - min(10 * err, 1), err averaged over the masks' union.

    Args:
        pred: (H, W) predicted matte in [0, 1].
        gt: (H, W) ground-truth matte in [0, 1].
        binarize_threshold: the union is {pred > threshold} | {gt > threshold} (InstMatt: 0).
        sums: `grad_conn_sums(pred, gt, binarize_threshold)` when already computed.

    Returns:
        (4,) float64 similarities for MAD, MSE, Grad, Conn, each in [0, 1].
    """
    pred = np.asarray(pred, dtype=np.float32)
    gt = np.asarray(gt, dtype=np.float32)
    union = (pred > binarize_threshold) | (gt > binarize_threshold)
    denom = float(union.sum()) + 1.0  # InstMatt's "+ 1" keeps an empty union finite
    diff = pred.astype(np.float64)[union] - gt.astype(np.float64)[union]
    if sums is None:
        sums = grad_conn_sums(pred, gt, binarize_threshold)  # computed on the people's bounding box
    err = np.array(
        [
            np.abs(diff).sum() / denom,
            np.square(diff).sum() / denom,
            sums["grad_union"] / denom,
            sums["conn_union"] / denom,
        ]
    )
    return 1.0 - np.minimum(SIMILARITY_SCALE * err, 1.0)


@dataclass(frozen=True)
class ImqImageStats:
    """One image's IMQ matching.

    Attributes:
        num_pred: Kp. num_gt: Kg.
        iou: (M,) IoU of the Hungarian pairs (masks alpha > 0), M = min(Kp, Kg).
        similarity: (M, 4) similarities (MAD, MSE, Grad, Conn) of each pair; NaN for pairs below every
            threshold (not computed).
    """

    num_pred: int
    num_gt: int
    iou: np.ndarray
    similarity: np.ndarray


def imq_image_stats(
    preds: Tensor,
    targets: Tensor,
    iou_thresholds: Sequence[float] = (0.5, 0.75),
    binarize_threshold: float = 0.0,
    pair_sums: Callable[[int, int], dict[str, float]] | None = None,
) -> ImqImageStats:
    """Match one image and compute the similarities of the pairs that pass the lowest threshold.

    Args:
        preds: (Kp, H, W) predicted mattes in [0, 1].
        targets: (Kg, H, W) ground-truth mattes in [0, 1].
        iou_thresholds: TP thresholds; similarities are computed for pairs with IoU >= the smallest.
        binarize_threshold: masks are alpha > binarize_threshold (InstMatt: 0).
        pair_sums: (pred index, gt index) -> `grad_conn_sums` of that pair, to share them with other metrics.
    """
    pred_index, gt_index, iou = match_instances(preds, targets, binarize_threshold)
    sims = np.full((len(iou), len(ERROR_NAMES)), np.nan)
    todo = np.flatnonzero(iou >= min(iou_thresholds))
    if len(todo):
        p = preds[torch.as_tensor(pred_index[todo], device=preds.device)].float().cpu().numpy()
        g = targets[torch.as_tensor(gt_index[todo], device=targets.device)].float().cpu().numpy()
        for k, (pk, gk) in enumerate(zip(p, g)):
            m = todo[k]
            sums = pair_sums(int(pred_index[m]), int(gt_index[m])) if pair_sums is not None else None
            sims[m] = pair_similarities(pk, gk, binarize_threshold, sums)
    return ImqImageStats(int(preds.shape[0]), int(targets.shape[0]), iou, sims)


def imq_suffix(th: float) -> str:
    """Key suffix of a threshold: "" for 0.5 (InstMatt's headline numbers), "_0.75" etc. otherwise."""
    return "" if th == 0.5 else f"_{format_threshold(th)}"


class IMQMetric(Metric):
    """InstMatt's IMQ (with RQ and MQ) for MAD, MSE, Grad and Conn at each IoU threshold, on the CPU.

    `update(preds, targets)` as in `InstanceMattingMetrics`. `compute()` returns `IMQ_mad`, `IMQ_mse`,
    `IMQ_grad`, `IMQ_conn`, `RQ`, `MQ_mad`, `MQ_mse`, `MQ_grad`, `MQ_conn` for TH = 0.5 and the same keys with
    a `_0.75` suffix for TH = 0.75 (any other threshold gets `_{th:g}`).

    Args:
        iou_thresholds: the TP thresholds (InstMatt: 0.5 and 0.75).
        binarize_threshold: masks are alpha > binarize_threshold (InstMatt: 0).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self, iou_thresholds: Sequence[float] = (0.5, 0.75), binarize_threshold: float = 0.0, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.iou_thresholds = check_thresholds(iou_thresholds)
        self.binarize_threshold = check_binarize_threshold(binarize_threshold)
        n = len(self.iou_thresholds)
        self.add_state("num_pred", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("num_gt", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("num_tp", torch.zeros(n, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state(
            "sum_similarity", torch.zeros(n, len(ERROR_NAMES), dtype=torch.float64), dist_reduce_fx="sum"
        )

    def update(self, preds: Sequence[Tensor] | Precomputed, targets: Sequence[Tensor] = ()) -> None:
        """Match and accumulate a batch of images (one list entry per image), or add `Precomputed` stats."""
        if isinstance(preds, Precomputed):
            self._add(preds.stats)
            return
        check_instance_inputs(preds, targets)
        for p, t in zip(preds, targets):
            self._add(imq_image_stats(p.detach(), t.detach(), self.iou_thresholds, self.binarize_threshold))

    def accumulate(self, stats: ImqImageStats) -> None:
        """Add one image's counts and similarity sums (from `imq_image_stats`, e.g. run in a worker)."""
        self.update(Precomputed(stats))

    def _add(self, stats: ImqImageStats) -> None:
        dev = self.num_tp.device
        tp = np.stack([stats.iou >= th for th in self.iou_thresholds])  # (T, M)
        sims = np.nan_to_num(stats.similarity)  # NaN only where no threshold is passed
        self.num_pred += stats.num_pred
        self.num_gt += stats.num_gt
        self.num_tp += torch.as_tensor(tp.sum(1), dtype=torch.int64, device=dev)
        self.sum_similarity += torch.as_tensor(tp.astype(np.float64) @ sims, dtype=torch.float64, device=dev)

    def compute(self) -> dict[str, Tensor]:
        """IMQ = sum s / (TP + FP/2 + FN/2), RQ = TP / (TP + FP/2 + FN/2), MQ = sum s / TP (else 0)."""
        tp = self.num_tp.double()  # (T,)
        fp = self.num_pred.double() - tp
        fn = self.num_gt.double() - tp
        denom = (tp + 0.5 * fp + 0.5 * fn)[:, None]  # (T, 1)
        zero = torch.zeros_like(self.sum_similarity)
        imq = torch.where(denom > 0, self.sum_similarity / denom.clamp_min(0.5), zero)
        mq = torch.where(tp[:, None] > 0, self.sum_similarity / tp[:, None].clamp_min(1.0), zero)
        rq = torch.where(denom[:, 0] > 0, tp / denom[:, 0].clamp_min(0.5), torch.zeros_like(tp))
        out: dict[str, Tensor] = {}
        for k, th in enumerate(self.iou_thresholds):
            s = imq_suffix(th)
            for e, name in enumerate(ERROR_NAMES):
                out[f"IMQ_{name}{s}"] = imq[k, e]
            out[f"RQ{s}"] = rq[k]
            for e, name in enumerate(ERROR_NAMES):
                out[f"MQ_{name}{s}"] = mq[k, e]
        return out


SKIPPED_ERRORS = ("grad", "conn")  # the errors that `LiteIMQMetric` leaves out
NO_GRAD_CONN = {"grad_union": 0.0, "conn_union": 0.0}


class LiteIMQMetric(IMQMetric):
    """InstMatt's IMQ, RQ and MQ from the MAD and MSE errors only (metric kind `imq_lite`).

    The Grad and Conn errors of IMQ run on the CPU and cost most of its time (docs/benchmarks.md); matching,
    RQ and the MAD / MSE similarities are the same as `IMQMetric`'s, so `val/IMQ_mse` (the default checkpoint
    monitor) is unchanged. Validation uses it by default (`metrics.families.validation_kinds`).
    """

    def update(self, preds: Sequence[Tensor] | Precomputed, targets: Sequence[Tensor] = ()) -> None:
        if isinstance(preds, Precomputed):  # stats already computed (IMQMetric.accumulate)
            return super().update(preds, targets)
        check_instance_inputs(preds, targets)
        for p, t in zip(preds, targets):
            stats = imq_image_stats(
                p.detach(),
                t.detach(),
                self.iou_thresholds,
                self.binarize_threshold,
                lambda i, j: NO_GRAD_CONN,
            )
            self.accumulate(stats)

    def compute(self) -> dict[str, Tensor]:
        # keys: IMQ_<error>[_<th>], MQ_<error>[_<th>], RQ[_<th>]
        return {k: v for k, v in super().compute().items() if [*k.split("_"), ""][1] not in SKIPPED_ERRORS}
