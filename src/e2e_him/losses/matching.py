"""Bipartite matching of queries to people (Eq. 9-12), the step that sorts the ground truth for every loss.

The assignment itself (`scipy.optimize.linear_sum_assignment`) runs on the host. `match_layers` matches every
decoder layer of a step with one copy from the device: the cost matrices of all layers and the valid flags go
together, and their finiteness is checked on the host copy (a check on the device would be a second wait).
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from e2e_him.losses.functional import class_cost, dice_cost, downsample_masks, focal_bce_cost, point_sample

Indices = list[tuple[Tensor, Tensor]]
# a non-finite cost is replaced by this for the assignment (`match_layers`), which still returns a valid one
NONFINITE_COST = 1.0e6


class HungarianMatcher(nn.Module):
    """Minimum-cost one-to-one assignment of the N queries to the K people of each image (Eq. 9).

    The cost of query i and person x is
    `cost_class * C_mcls^i + cost_focal * C_mfocal^{i,x} + cost_dice * C_mdice^{i,x}` (Eq. 9-12; the paper
    weighs all three by 1). Mask costs are computed at the prediction's resolution (H/8): the ground-truth
    masks are area-averaged to that size and thresholded at 0.5 (`mask_target="binary"`, or kept soft), or,
    with `num_points`, both are bilinearly sampled at the same random points (Mask2Former), the ground truth
    at full resolution. Costs are computed for the whole batch at once (einsum); only the assignment
    (`scipy.optimize.linear_sum_assignment`) loops over images. Everything runs without gradient, in float32
    even under autocast.

    Args:
        cost_class: weight of the class cost (Eq. 10).
        cost_focal: weight of the focal BCE cost (Eq. 11).
        cost_dice: weight of the dice cost (Eq. 12).
        num_points: points sampled per image for the mask costs; None = every pixel at H/8.
        focal_alpha: alpha of the focal BCE (0.25; negative turns it off).
        focal_gamma: gamma of the focal BCE (2).
        mask_target: "binary" or "soft" ground-truth masks at H/8 (dense mode only).
        human_index: class index of "human" in `pred_logits`.
    """

    def __init__(
        self,
        cost_class: float = 1.0,
        cost_focal: float = 1.0,
        cost_dice: float = 1.0,
        num_points: int | None = None,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        mask_target: str = "binary",
        human_index: int = 1,
    ) -> None:
        super().__init__()
        if num_points is not None and num_points < 1:
            raise ValueError(f"num_points={num_points}: give a positive number of points, or None for dense")
        if mask_target not in ("binary", "soft"):
            raise ValueError(f"mask_target={mask_target!r}: choose 'binary' or 'soft'")
        self.cost_class = cost_class
        self.cost_focal = cost_focal
        self.cost_dice = cost_dice
        self.num_points = num_points
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.mask_target = mask_target
        self.human_index = human_index

    @torch.no_grad()
    def cost_matrix(self, pred_logits: Tensor, pred_masks: Tensor, gt_masks: Tensor) -> Tensor:
        """Matching cost C_match of every (query, person) pair of every image (Eq. 9).

        Args:
            pred_logits: (B, N, 2) class logits.
            pred_masks: (B, N, h, w) mask logits.
            gt_masks: (B, K, H, W) ground-truth masks in [0, 1] (any size; see the class docstring).

        Returns:
            (B, N, K) float32 cost.
        """
        with torch.autocast(device_type=pred_masks.device.type, enabled=False):
            pred_logits, pred_masks, gt_masks = pred_logits.float(), pred_masks.float(), gt_masks.float()
            b, n = pred_masks.shape[:2]
            k = gt_masks.shape[1]
            if self.num_points is None:
                gt = downsample_masks(gt_masks, tuple(pred_masks.shape[-2:]), self.mask_target)
                pred, gt = pred_masks.flatten(2), gt.flatten(2)  # (B, N, P), (B, K, P)
            else:
                coords = torch.rand(b, self.num_points, 2, device=pred_masks.device)  # shared within an image
                pred = point_sample(pred_masks, coords)  # (B, N, P)
                gt = point_sample(gt_masks, coords)  # (B, K, P)
            cost = self.cost_class * class_cost(pred_logits, self.human_index)  # (B, N, 1)
            cost = cost + self.cost_focal * focal_bce_cost(pred, gt, self.focal_alpha, self.focal_gamma)
            cost = cost + self.cost_dice * dice_cost(pred, gt)
            return cost.expand(b, n, k)

    @torch.no_grad()
    def forward(self, outputs: dict[str, Tensor], gt_masks: Tensor, valid: Tensor) -> Indices:
        """Assign queries to the valid people of each image.

        Args:
            outputs: a dict with `pred_logits` (B, N, 2) and `pred_masks` (B, N, h, w) (the final layer or
                one entry of `aux_outputs`).
            gt_masks: (B, Kmax, H, W) ground-truth masks, padded.
            valid: (B, Kmax) bool, True for real people (padding is False).

        Returns:
            One (query_idx, target_idx) pair of int64 tensors per image, of equal length min(N, K_b), sorted
            by query; target_idx indexes the padded Kmax axis. An image without people gets two empty tensors.

        Raises:
            ValueError: when a cost is NaN or infinite (`match_layers` assigns anyway and reports it).
        """
        (indices,), finite = self.match_layers([outputs], [gt_masks], valid)
        if not finite:
            raise ValueError(
                "matching cost is not finite: the model's pred_logits or pred_masks contain NaN or inf"
            )
        return indices

    @torch.no_grad()
    def match_layers(
        self, layers: list[dict[str, Tensor]], gt_masks: list[Tensor], valid: Tensor
    ) -> tuple[list[Indices], bool]:
        """`forward` for several decoder layers at once, with one device-to-host copy for all of them.

        Args:
            layers: dicts with `pred_logits` (B, N, 2) and `pred_masks` (B, N, h, w), e.g. the final layer
                and every entry of `aux_outputs`.
            gt_masks: each layer's (B, Kmax, H, W) ground-truth masks (its resolution may differ).
            valid: (B, Kmax) bool, True for real people.

        Returns:
            One assignment per layer (as `forward`'s), and whether every cost was finite. Non-finite costs
            are replaced by `NONFINITE_COST` for the assignment, so that the caller gets one either way: a
            training step whose outputs are not finite is then skipped by the caller, on every process.
        """
        costs = torch.stack(
            [self.cost_matrix(l["pred_logits"], l["pred_masks"], g) for l, g in zip(layers, gt_masks)]
        )  # (L, B, N, Kmax)
        packed = torch.cat([costs.flatten(), valid.flatten().to(costs.dtype)]).cpu()  # the one host sync
        costs, valid = (
            packed[: costs.numel()].view(costs.shape),
            packed[costs.numel() :].view(valid.shape) > 0,
        )
        finite = bool(torch.isfinite(costs).all())
        if not finite:
            costs = torch.nan_to_num(costs, nan=NONFINITE_COST, posinf=NONFINITE_COST, neginf=-NONFINITE_COST)
        targets = [v.nonzero().squeeze(1) for v in valid]  # (K_b,) positions of each image's real people
        return [self._assign(layer_costs, targets) for layer_costs in costs], finite

    @staticmethod
    def _assign(cost: Tensor, targets: list[Tensor]) -> Indices:
        """Minimum-cost assignment of each image of a (B, N, Kmax) host cost to its valid people."""
        indices: Indices = []
        for c, t in zip(cost, targets):
            rows, cols = linear_sum_assignment(c[:, t].numpy())
            indices.append(
                (torch.as_tensor(rows, dtype=torch.int64), t[torch.as_tensor(cols, dtype=torch.int64)])
            )
        return indices
