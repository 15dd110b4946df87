"""`PartIoU`: how well each sub-network's output covers its person, on the queries the objective matched.

A training diagnostic, not a paper metric: for every person of a validation batch and the query that the
criterion's Hungarian matching (Eq. 9-12) assigns to it, the IoU with the person's ground-truth mask of

- `iou_mask`: the perception mask M_pred (Eq. 2, H/8 logits, bilinearly upsampled, logit > 0),
- `iou_trimap`: the predicted trimap's person region (argmax unknown or foreground, Eq. 8's upsampling)
  against the ground-truth trimap's unknown-or-foreground region,
- `iou_matte`: the final matte alpha_fin (Eq. 8) > 0.5 against the ground-truth alpha > 0.5,

averaged over people. A low `iou_mask` with a high `iou_matte` says the instance matting network repairs a
coarse perception; a low `iou_matte` with a high `iou_mask` points at the matting network.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from e2e_him.data.trimap import BACKGROUND

PARTS = ("iou_mask", "iou_trimap", "iou_matte")


def _iou(pred: Tensor, target: Tensor) -> Tensor:
    """Per-row IoU of boolean (M, P) masks; an empty union counts as IoU 1."""
    inter = (pred & target).sum(-1).float()
    union = (pred | target).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def matched_part_ious(outputs: dict[str, Any], batch: dict[str, Any], indices) -> dict[str, Tensor]:
    """The three IoUs of every matched (query, person) pair: `{part: (M,)}` (see the module docstring).

    Args:
        outputs: network outputs with `pred_masks` (B, N, h, w), `trimap_logits` (B, N, 3, h', w') and
            `alpha_fin` (B, N, H, W).
        batch: the collated batch with `masks`, `trimaps`, `alphas` (B, K, H, W).
        indices: one (query_idx, target_idx) pair of index tensors per image (the criterion's matching).
    """
    size = batch["alphas"].shape[-2:]
    device = outputs["alpha_fin"].device
    b = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(indices)]).to(device)
    q = torch.cat([q for q, _ in indices]).to(device)
    t = torch.cat([t for _, t in indices]).to(device)
    if not b.numel():
        return {part: torch.zeros(0, device=device) for part in PARTS}
    masks = F.interpolate(outputs["pred_masks"][b, q][:, None].float(), size=size, mode="bilinear")[:, 0]
    tri = outputs["trimap_logits"][b, q].float()  # (M, 3, h', w')
    tri = F.interpolate(tri, size=size, mode="bilinear").argmax(1)  # (M, H, W)
    gt_mask = batch["masks"][b, t] > 0.5
    return {
        "iou_mask": _iou((masks > 0).flatten(1), gt_mask.flatten(1)),
        "iou_trimap": _iou((tri != BACKGROUND).flatten(1), (batch["trimaps"][b, t] != BACKGROUND).flatten(1)),
        "iou_matte": _iou(
            (outputs["alpha_fin"][b, q] > 0.5).flatten(1), (batch["alphas"][b, t] > 0.5).flatten(1)
        ),
    }


class PartIoU(Metric):
    """Mean IoU of the perception masks, trimaps and final mattes of matched queries (a diagnostic)."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for part in PARTS:
            self.add_state(part, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("people", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, outputs: dict[str, Any], batch: dict[str, Any], indices) -> None:
        ious = matched_part_ious(outputs, batch, indices)
        for part in PARTS:
            setattr(self, part, getattr(self, part) + ious[part].double().sum())
        self.people += ious[PARTS[0]].numel()

    def compute(self) -> dict[str, Tensor]:
        n = self.people.clamp(min=1).double()
        return {part: (getattr(self, part) / n).float() for part in PARTS}
