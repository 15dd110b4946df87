"""Loss and matching-cost functions of the objective (Eq. 10-18), each a plain function on tensors.

Conventions: mask logits and targets are flattened to (M, P) (M masks, P pixels or sampled points);
per-mask losses return (M,) means over P so that the caller sums them and divides by the number of people
(Eq. 15, 17). Pairwise costs take (..., N, P) predictions and (..., K, P) targets and return (..., N, K)
without a loop (einsum).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from e2e_him.data.trimap import UNKNOWN, trimap_argmax_masks


# ----------------------------------------------------------------------------------------------- focal BCE
def focal_bce_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Focal binary cross entropy BCE_focal(M_pred, M_sort) of each mask (Eq. 15), mean over pixels.

    Per pixel: -alpha_t (1 - p_t)^gamma log p_t with p = sigmoid(logit), p_t = p if target = 1 else 1 - p,
    alpha_t = alpha for target 1 and 1 - alpha for target 0 (Lin et al.'s sigmoid focal loss, as
    `torchvision.ops.sigmoid_focal_loss`; `alpha < 0` turns the class balancing off).

    Args:
        logits: (M, P) mask logits.
        targets: (M, P) targets in [0, 1].

    Returns:
        (M,) loss of each mask.
    """
    if logits.shape[-1] == 0:
        return logits.sum(-1)
    return sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="none").mean(-1)


def focal_bce_cost(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Pairwise focal BCE matching cost C_mfocal^{i,x} = BCE_focal(M_pred^i, M_gt^x) (Eq. 11).

    Splits each pixel's loss into its target-1 and target-0 parts, so every (query, person) pair costs two
    einsums; equal to `focal_bce_loss` of the pair for binary targets.

    Args:
        logits: (..., N, P) mask logits of the queries.
        targets: (..., K, P) binary masks of the people.

    Returns:
        (..., N, K) cost, the mean over the P pixels.
    """
    prob = logits.sigmoid()
    pos = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    neg = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    pos = pos * (1.0 - prob) ** gamma  # (..., N, P): loss of the pixel if its target is 1
    neg = neg * prob**gamma  # (..., N, P): loss of the pixel if its target is 0
    if alpha >= 0:
        pos, neg = pos * alpha, neg * (1.0 - alpha)
    cost = torch.einsum("...np,...kp->...nk", pos, targets) + torch.einsum(
        "...np,...kp->...nk", neg, 1 - targets
    )
    return cost / max(logits.shape[-1], 1)


# ---------------------------------------------------------------------------------------------------- dice
def dice_loss(logits: Tensor, targets: Tensor, smooth: float = 1.0) -> Tensor:
    """Dice loss Dice(M_pred, M_sort) = 1 - (2 sum(p t) + s) / (sum p + sum t + s) of each mask (Eq. 15).

    Args:
        logits: (M, P) mask logits (p = sigmoid(logits)).
        targets: (M, P) targets in [0, 1].
        smooth: the additive s that keeps empty masks finite (1, as in Milletari et al. / MaskFormer).

    Returns:
        (M,) loss of each mask.
    """
    prob = logits.sigmoid()
    inter = (prob * targets).sum(-1)
    return 1.0 - (2.0 * inter + smooth) / (prob.sum(-1) + targets.sum(-1) + smooth)


def dice_cost(logits: Tensor, targets: Tensor, smooth: float = 1.0) -> Tensor:
    """Pairwise dice matching cost C_mdice^{i,x} = Dice(M_pred^i, M_gt^x) (Eq. 12), as 1 - coefficient.

    Args:
        logits: (..., N, P) mask logits of the queries.
        targets: (..., K, P) masks of the people.

    Returns:
        (..., N, K) cost.
    """
    prob = logits.sigmoid()
    inter = torch.einsum("...np,...kp->...nk", prob, targets)
    denom = prob.sum(-1).unsqueeze(-1) + targets.sum(-1).unsqueeze(-2)  # (..., N, 1) + (..., 1, K)
    return 1.0 - (2.0 * inter + smooth) / (denom + smooth)


# -------------------------------------------------------------------------------------------- classification
def class_cost(logits: Tensor, human_index: int = 1) -> Tensor:
    """Class matching cost C_mcls^i = -softmax(c_pred^i)[human] (Eq. 10).

    Args:
        logits: (..., N, C) class logits.

    Returns:
        (..., N, 1) cost, broadcastable against the (..., N, K) mask costs.
    """
    return -logits.softmax(-1)[..., human_index : human_index + 1]


def weighted_cross_entropy(
    logits: Tensor, targets: Tensor, class_weights: Tensor, normalization: str = "num_queries"
) -> Tensor:
    """Classification loss L_cls = 1/N sum_i w^i CE(c_pred^i, c_sort^i) over all queries (Eq. 14).

    Args:
        logits: (B, N, C) class logits.
        targets: (B, N) int64 class of each query (0 = background for unmatched queries).
        class_weights: (C,) weight w of each class (paper: 0.1 background, 1 human).
        normalization: "num_queries" divides by the number of queries B * N, as Eq. 14 is written;
            "weight_sum" divides by sum_i w^i, as `F.cross_entropy(weight=...)`'s mean (MaskFormer's code).

    Returns:
        Scalar loss.
    """
    per_query = F.cross_entropy(
        logits.flatten(0, -2), targets.flatten(), weight=class_weights, reduction="none"
    )
    if normalization == "num_queries":
        return per_query.sum() / max(per_query.numel(), 1)
    if normalization == "weight_sum":
        return per_query.sum() / class_weights[targets.flatten()].sum().clamp(
            min=torch.finfo(logits.dtype).tiny
        )
    raise ValueError(f"normalization={normalization!r}: choose 'num_queries' (Eq. 14) or 'weight_sum'")


# ------------------------------------------------------------------------------------------------ trimap
def focal_cross_entropy(
    logits: Tensor, targets: Tensor, gamma: float = 2.0, class_weights: Tensor | None = None
) -> Tensor:
    """Focal cross entropy CE_focal(T_pred, T_sort) of each trimap (Eq. 17), mean over pixels.

    Per pixel: -a_t (1 - p_t)^gamma log p_t with p = softmax over the classes and p_t the probability of the
    target class; a_t = class_weights[target] (1 when None).

    Args:
        logits: (M, C, *S) class logits (trimap: C = 3, S = (H/2, W/2)).
        targets: (M, *S) int64 class indices.
        gamma: focusing parameter (0 gives plain cross entropy).
        class_weights: optional (C,) per-class factor a.

    Returns:
        (M,) loss of each map.
    """
    log_p = logits.log_softmax(1).gather(1, targets.unsqueeze(1)).squeeze(1)  # (M, *S): log p_t
    loss = -((1.0 - log_p.exp()) ** gamma) * log_p
    if class_weights is not None:
        loss = loss * class_weights[targets]
    loss = loss.flatten(1)  # (M, prod(S))
    return loss.sum(-1) if loss.shape[1] == 0 else loss.mean(-1)


def downsample_trimaps(trimaps: Tensor, size: tuple[int, int]) -> Tensor:
    """Ground-truth trimaps at the trimap head's size (H/2) by a rule that keeps thin unknown bands.

    A low-resolution pixel is foreground (background) only when every full-resolution pixel it covers is
    foreground (background); any unknown or mixed cell becomes unknown. Nearest sampling would instead drop
    unknown bands one pixel wide. Cells come from `adaptive_max_pool2d`, so sizes need not divide.

    Args:
        trimaps: (M, H, W) int64 in {0, 1, 2}.
        size: (h, w) output size.

    Returns:
        (M, h, w) int64 in {0, 1, 2}.
    """
    if tuple(trimaps.shape[-2:]) == tuple(size):
        return trimaps
    t = trimaps.unsqueeze(1).float()  # (M, 1, H, W)
    hi = F.adaptive_max_pool2d(t, size)
    lo = -F.adaptive_max_pool2d(-t, size)
    return torch.where(hi == lo, hi, torch.full_like(hi, UNKNOWN)).squeeze(1).long()


def predicted_unknown(trimap_logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Predicted unknown region U_pred (Eq. 8, 18): where the trimap logits, bilinearly upsampled to full
    resolution, have their maximum at "unknown" (the same region `fuse_alpha` uses at inference).

    Args:
        trimap_logits: (M, 3, h, w) logits T_pred.
        size: (H, W) full resolution.

    Returns:
        (M, H, W) bool, without gradient.
    """
    if trimap_logits.shape[0] == 0:
        return torch.zeros((0, *size), dtype=torch.bool, device=trimap_logits.device)
    logits = F.interpolate(trimap_logits.detach(), size=size, mode="bilinear")  # (M, 3, H, W)
    return trimap_argmax_masks(logits, dim=1)[0]


# -------------------------------------------------------------------------------------------------- alpha
def region_l1(pred: Tensor, target: Tensor, region: Tensor, count: Tensor | None = None) -> Tensor:
    """Mean absolute error over a region pooled across all masks (one term of Eq. 18).

    Computes sum_i sum_{j in U^i} |pred^{i,j} - target^{i,j}| / |U| with |U| = max(sum_i |U^i|, 1), so an
    empty region gives 0. Under DDP the caller passes `count`, the pixel count of all processes' regions
    divided by the world size (`SetCriterion`), so that the averaged gradients are those of one process.

    Args:
        pred: (M, H, W) predicted alpha.
        target: (M, H, W) ground-truth alpha.
        region: (M, H, W) bool region U.
        count: the normaliser |U| to use instead of this region's own pixel count (a scalar tensor).

    Returns:
        Scalar loss.
    """
    region = region.to(pred.dtype)
    if count is None:
        count = region.sum().clamp(min=1.0)
    return ((pred - target).abs() * region).sum() / count


# ------------------------------------------------------------------------------------------- mask targets
def downsample_masks(masks: Tensor, size: tuple[int, int], mode: str = "binary") -> Tensor:
    """Ground-truth masks at the mask head's size (H/8) by area averaging (the fraction of each cell covered).

    Args:
        masks: (..., H, W) masks in [0, 1].
        size: (h, w) output size.
        mode: "binary" thresholds the covered fraction at 0.5; "soft" keeps it.

    Returns:
        (..., h, w) float masks.
    """
    if mode not in ("binary", "soft"):
        raise ValueError(f"mask target mode={mode!r}: choose 'binary' or 'soft'")
    lead = masks.shape[:-2]
    x = masks.float().reshape(-1, 1, *masks.shape[-2:])
    if tuple(masks.shape[-2:]) != tuple(size) and x.shape[0] > 0:
        x = F.adaptive_avg_pool2d(x, size)
    x = x.reshape(*lead, *x.shape[-2:])
    if tuple(x.shape[-2:]) != tuple(size):  # zero masks: only the size changes
        x = x.new_zeros((*lead, *size))
    return (x >= 0.5).float() if mode == "binary" else x


# ------------------------------------------------------------------------------- point sampling (Mask2Former)
def point_sample(inputs: Tensor, coords: Tensor) -> Tensor:
    """Bilinear samples of maps at normalised points (align_corners=False, so any resolution agrees).

    Args:
        inputs: (B, C, H, W) maps.
        coords: (B, P, 2) points as (x, y) in [0, 1].

    Returns:
        (B, C, P) samples.
    """
    grid = 2.0 * coords.unsqueeze(2) - 1.0  # (B, P, 1, 2) in [-1, 1]
    return F.grid_sample(inputs, grid.to(inputs.dtype), mode="bilinear", align_corners=False).squeeze(-1)


def uncertain_point_coords(
    logits: Tensor, num_points: int, oversample_ratio: float = 3.0, importance_sample_ratio: float = 0.75
) -> Tensor:
    """Points for the mask losses: mostly where the logit is closest to 0 (uncertain), the rest uniform.

    Draws `oversample_ratio * num_points` uniform candidates, keeps the `importance_sample_ratio` share with
    the smallest |logit|, and fills up with fresh uniform points (PointRend / Mask2Former).

    Args:
        logits: (M, 1, h, w) mask logits.
        num_points: points per mask.

    Returns:
        (M, num_points, 2) points (x, y) in [0, 1].
    """
    m = logits.shape[0]
    num_sampled = max(int(num_points * oversample_ratio), num_points)
    candidates = torch.rand(m, num_sampled, 2, device=logits.device)
    uncertainty = -point_sample(logits.detach().float(), candidates).abs().squeeze(1)  # (M, num_sampled)
    num_uncertain = min(int(importance_sample_ratio * num_points), num_points)
    idx = uncertainty.topk(num_uncertain, dim=1).indices  # (M, num_uncertain)
    chosen = candidates.gather(1, idx.unsqueeze(-1).expand(-1, -1, 2))
    rest = torch.rand(m, num_points - num_uncertain, 2, device=logits.device)
    return torch.cat([chosen, rest], dim=1)
