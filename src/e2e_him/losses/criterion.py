"""`SetCriterion`: the E2E-HIM objective L = lambda_p L_p + lambda_m L_m (Eq. 13-19) on matched queries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from e2e_him.losses.functional import (
    UNKNOWN,
    dice_loss,
    downsample_masks,
    downsample_trimaps,
    focal_bce_loss,
    focal_cross_entropy,
    point_sample,
    predicted_unknown,
    region_l1,
    uncertain_point_coords,
    weighted_cross_entropy,
)
from e2e_him.losses.matching import HungarianMatcher, Indices

Pairs = tuple[Tensor, Tensor, Tensor]  # (image, query, target) index of each matched pair, each (M,)

PERCEPTION_KEYS = ("loss_cls", "loss_focal", "loss_dice")
MATCHER_COSTS = ("cost_class", "cost_focal", "cost_dice")  # the matcher's own values; the rest are shared


def global_count(local: Tensor) -> Tensor:
    """A loss normaliser (|Omega| of Eq. 15/17, |U| of Eq. 18): max(count, 1), over all processes under DDP.

    While training under torch.distributed with W > 1 processes, the counts are summed over the processes,
    clamped at 1 and divided by W: each process divides its own sum by that, DDP averages the W gradients,
    and the result is the gradient of (sum over all processes) / max(global count, 1), the one a single
    process computes on the whole batch. Evaluation (no gradient) uses each process's own count and runs no
    collective, since its shards may hold different numbers of batches.

    Args:
        local: this process's count(s), any shape.

    Returns:
        float32 tensor of the same shape, without gradient.
    """
    n = local.detach().to(torch.float32)
    if torch.is_grad_enabled() and dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
        if world > 1:
            n = n.clone()
            dist.all_reduce(n)
            return n.clamp(min=1.0) / world
    return n.clamp(min=1.0)


class SetCriterion(nn.Module):
    """Perception loss (Eq. 13-15) on every decoder layer and matting loss (Eq. 16-18) on the final one.

    Each forward matches queries to people (`HungarianMatcher`, Eq. 9-12), then computes, with the number
    of people P_all of the batch (at least 1) as the normaliser |Omega|:

    - `loss_cls` L_cls (Eq. 14): weighted CE over all B * N queries, unmatched ones labelled background.
    - `loss_focal`, `loss_dice`: sum over matched masks of BCE_focal / Dice at H/8, divided by P_all (Eq. 15);
      `loss_seg` = lambda_b * focal + lambda_d * dice;
      `loss_perception` = lambda_c * cls + lambda_s * seg (Eq. 13).
    - `loss_tri` (Eq. 17): focal CE of the matched trimaps at H/2, summed and divided by P_all.
    - `loss_alpha_pu`, `loss_alpha_gu` (Eq. 18): L1 of the matched alpha_pred over the predicted unknown
      region (argmax of the trimap logits, nearest-upsampled to H, no gradient) and over the ground-truth
      unknown region (trimap == 1), each divided by that region's pixel count over all matched queries (at
      least 1); `loss_alpha` = lambda_pu * pu + lambda_gu * gu;
      `loss_matting` = lambda_t * tri + lambda_alpha * alpha (Eq. 16).
    - With deep supervision, every entry of `outputs["aux_outputs"]` is matched on its own and gives the same
      three perception terms; `loss_cls_aux`, `loss_focal_aux`, `loss_dice_aux` are their raw sums over layers
      and `loss_perception_aux` their weighted sum (each layer weighted like the final one, as Mask2Former).
    - `loss` = lambda_p * (loss_perception + aux_weight * loss_perception_aux) + lambda_m * loss_matting
      (Eq. 19 plus the deep supervision): the aux terms ARE included in the total, each layer weighted by
      `aux_weight`.

    All values are scalar tensors; absent parts (no aux layers, no people) are 0, never NaN.

    Under DDP, while training, |Omega| and the two pixel counts are those of the whole global batch (see
    `global_count`), so that W processes with batch b give the gradients of one process with batch W * b.

    The matcher and the losses read one set of values (Mask2Former's habit): the criterion builds its
    `HungarianMatcher` from the cost weights in `matcher` and its own `focal_alpha`, `focal_gamma`,
    `num_points` and `mask_target`.

    Args:
        matcher: the matcher's cost weights `cost_class`, `cost_focal`, `cost_dice` (Eq. 9-12; the paper: 1
            each, the default for any not given).
        lambda_c, lambda_s: weights of L_cls and L_seg in L_p (Eq. 13; paper 5, 1).
        lambda_b, lambda_d: weights of the focal BCE and dice in L_seg (Eq. 15; paper 0.1, 1).
        lambda_t, lambda_alpha: weights of L_tri and L_alpha in L_m (Eq. 16; paper 10, 5).
        lambda_pu, lambda_gu: weights of the predicted / ground-truth unknown L1 terms (Eq. 18; paper 3, 5).
        lambda_p, lambda_m: weights of L_p and L_m in L (Eq. 19; paper 1, 1).
        background_weight, human_weight: class weights w of Eq. 14 (paper 0.1, 1).
        cls_normalization: "num_queries" (1/N as Eq. 14 is written) or "weight_sum" (torch's weighted mean).
        focal_alpha, focal_gamma: the focal BCE's alpha and gamma, in the matching cost (Eq. 11) and L_seg
            (Eq. 15) (0.25, 2: Lin et al.'s sigmoid focal loss).
        trimap_gamma: gamma of the trimap focal CE (2).
        deep_supervision: add the perception loss of every intermediate decoder layer.
        person_weight: ours, 0 in the paper: weight of `loss_person`, BCE + dice of the dense "any person" map
            `outputs["pred_person"]` against the union of the people's masks (added to the total).
        aux_weight: weight of each intermediate layer's perception loss in the total (1: Mask2Former's habit;
            with D decoder layers the perception-to-matting balance of Eq. 19 becomes about D : 1).
        num_points: None computes the mask costs and losses on every H/8 pixel; a number samples that many
            points, the ground truth at full resolution: random ones per image for the matching costs, mostly
            uncertain ones per matched mask for the losses (Mask2Former).
        oversample_ratio, importance_sample_ratio: the point sampler's settings (3, 0.75).
        mask_target: ground-truth masks at H/8 by area averaging, "binary" (>= 0.5) or "soft", for the
            matching costs and the losses.
    """

    def __init__(
        self,
        matcher: Mapping[str, float] | None = None,
        lambda_c: float = 5.0,
        lambda_s: float = 1.0,
        lambda_b: float = 0.1,
        lambda_d: float = 1.0,
        lambda_t: float = 10.0,
        lambda_alpha: float = 5.0,
        lambda_pu: float = 3.0,
        lambda_gu: float = 5.0,
        lambda_p: float = 1.0,
        lambda_m: float = 1.0,
        background_weight: float = 0.1,
        human_weight: float = 1.0,
        cls_normalization: str = "num_queries",
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        trimap_gamma: float = 2.0,
        deep_supervision: bool = True,
        aux_weight: float = 1.0,
        person_weight: float = 0.0,
        num_points: int | None = None,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
        mask_target: str = "binary",
    ) -> None:
        super().__init__()
        if cls_normalization not in ("num_queries", "weight_sum"):
            raise ValueError(f"cls_normalization={cls_normalization!r}: choose 'num_queries' or 'weight_sum'")
        if mask_target not in ("binary", "soft"):
            raise ValueError(f"mask_target={mask_target!r}: choose 'binary' or 'soft'")
        unknown = sorted(set(matcher or {}) - set(MATCHER_COSTS))
        if unknown:
            raise ValueError(f"matcher: unknown cost weight(s) {unknown}; give any of {list(MATCHER_COSTS)}")
        self.matcher = HungarianMatcher(
            **dict(matcher or {}),
            num_points=num_points,
            focal_alpha=focal_alpha,
            focal_gamma=focal_gamma,
            mask_target=mask_target,
        )
        self.lambda_c, self.lambda_s = lambda_c, lambda_s  # Eq. 13
        self.lambda_b, self.lambda_d = lambda_b, lambda_d  # Eq. 15
        self.lambda_t, self.lambda_alpha = lambda_t, lambda_alpha  # Eq. 16
        self.lambda_pu, self.lambda_gu = lambda_pu, lambda_gu  # Eq. 18
        self.lambda_p, self.lambda_m = lambda_p, lambda_m  # Eq. 19
        self.cls_normalization = cls_normalization
        self.focal_alpha, self.focal_gamma, self.trimap_gamma = focal_alpha, focal_gamma, trimap_gamma
        self.deep_supervision = deep_supervision
        self.aux_weight = float(aux_weight)
        self.person_weight = float(person_weight)
        self.num_points = num_points
        self.oversample_ratio, self.importance_sample_ratio = oversample_ratio, importance_sample_ratio
        self.mask_target = mask_target
        # w of Eq. 14, indexed by class (0 background, 1 human); not saved in checkpoints.
        self.register_buffer(
            "class_weights", torch.tensor([background_weight, human_weight]), persistent=False
        )

    # ------------------------------------------------------------------------------------------------ helpers
    @staticmethod
    def num_people(valid: Tensor) -> Tensor:
        """|Omega| of Eq. 15 and 17: the people in the batch, at least 1 (under DDP see `global_count`)."""
        return global_count(valid.sum())

    @staticmethod
    def flat_pairs(layer_indices: list[Indices], device: torch.device) -> list[Pairs]:
        """(image, query, target) index of every matched pair of each layer, each (M,) int64 on `device`,
        moved there in one copy that does not wait (pinned host memory when the device is a GPU)."""
        rows = []
        for indices in layer_indices:
            b = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(indices)])
            rows.append(
                torch.stack([b, torch.cat([q for q, _ in indices]), torch.cat([t for _, t in indices])])
            )
        packed = torch.cat(rows, dim=1)  # (3, sum of M)
        if device.type == "cuda":
            packed = packed.pin_memory().to(device, non_blocking=True)
        else:
            packed = packed.to(device)
        return [tuple(chunk) for chunk in packed.split([r.shape[1] for r in rows], dim=1)]

    def _mask_targets(self, layer: dict[str, Tensor], batch: dict[str, Any], gt_low: Tensor) -> Tensor:
        """The ground-truth masks a layer is matched and supervised on: at its mask resolution (H/8), or at
        full resolution for sampled points."""
        if self.num_points is not None:
            return batch["masks"]
        if layer["pred_masks"].shape[-2:] == gt_low.shape[-2:]:
            return gt_low
        return downsample_masks(batch["masks"], tuple(layer["pred_masks"].shape[-2:]), self.mask_target)

    # ------------------------------------------------------------------------------------------ perception
    def perception_terms(
        self,
        layer: dict[str, Tensor],
        pairs: Pairs,
        batch: dict[str, Any],
        gt_low: Tensor,
        num_people: Tensor,
    ) -> dict[str, Tensor]:
        """L_cls (Eq. 14) and the focal BCE and dice parts of L_seg (Eq. 15) of one layer, unweighted;
        `pairs`: the layer's matched (image, query, target) indices (`flat_pairs`); `gt_low`: its ground-truth
        masks at its mask resolution (unread with sampled points, which read `batch["masks"]`)."""
        logits = layer["pred_logits"].float()  # (B, N, 2)
        b, q, t = pairs
        target_classes = torch.zeros(logits.shape[:2], dtype=torch.long, device=logits.device)
        target_classes[b, q] = batch["labels"][b, t].long()
        loss_cls = weighted_cross_entropy(logits, target_classes, self.class_weights, self.cls_normalization)

        src = layer["pred_masks"][b, q].float()  # (M, h, w)
        if self.num_points is None:
            src, tgt = src.flatten(1), gt_low[b, t].flatten(1)  # (M, h*w)
        else:
            coords = uncertain_point_coords(
                src.unsqueeze(1), self.num_points, self.oversample_ratio, self.importance_sample_ratio
            )  # (M, P, 2)
            src = point_sample(src.unsqueeze(1), coords).squeeze(1)  # (M, P)
            tgt = point_sample(batch["masks"][b, t].unsqueeze(1).float(), coords).squeeze(1)
        return {
            "loss_cls": loss_cls,
            "loss_focal": focal_bce_loss(src, tgt, self.focal_alpha, self.focal_gamma).sum() / num_people,
            "loss_dice": dice_loss(src, tgt).sum() / num_people,
        }

    # --------------------------------------------------------------------------------------------- matting
    def matting_terms(
        self, outputs: dict[str, Tensor], pairs: Pairs, batch: dict[str, Any], num_people: Tensor
    ) -> dict[str, Tensor]:
        """L_tri (Eq. 17) and the two L1 terms of L_alpha (Eq. 18), unweighted, on the matched queries `pairs`
        (`flat_pairs`) only."""
        alpha_all = outputs["alpha_pred"]  # (B, N, H, W)
        if alpha_all.shape[-2:] != batch["alphas"].shape[-2:]:
            raise ValueError(
                f"outputs['alpha_pred'] is {tuple(alpha_all.shape[-2:])} but batch['alphas'] is "
                f"{tuple(batch['alphas'].shape[-2:])}: the boundary alpha must be at the input resolution"
            )
        b, q, t = pairs
        tri_logits = outputs["trimap_logits"][b, q].float()  # (M, 3, H/2, W/2)
        gt_tri = batch["trimaps"][b, t].long()  # (M, H, W)
        gt_tri_low = downsample_trimaps(gt_tri, tuple(tri_logits.shape[-2:]))  # (M, H/2, W/2)
        loss_tri = focal_cross_entropy(tri_logits, gt_tri_low, self.trimap_gamma).sum() / num_people

        alpha = alpha_all[b, q].float()  # (M, H, W)
        gt_alpha = batch["alphas"][b, t].float()
        u_pred = predicted_unknown(tri_logits, tuple(alpha.shape[-2:]))  # (M, H, W) bool, detached
        u_gt = gt_tri == UNKNOWN  # (M, H, W) bool
        counts = global_count(torch.stack([u_pred.sum(), u_gt.sum()]))  # (2,): |U_pred|, |U_gt| of Eq. 18
        return {
            "loss_tri": loss_tri,
            "loss_alpha_pu": region_l1(alpha, gt_alpha, u_pred, counts[0]),
            "loss_alpha_gu": region_l1(alpha, gt_alpha, u_gt, counts[1]),
        }

    def person_loss(self, logits: Tensor, batch: dict[str, Any]) -> Tensor:
        """BCE + dice of the dense person map (B, h, w) against the union of the batch's masks."""
        union = (batch["masks"] * batch["valid"][..., None, None]).amax(dim=1)  # (B, H, W)
        target = downsample_masks(union, tuple(logits.shape[-2:]), self.mask_target)  # (B, h, w)
        bce = F.binary_cross_entropy_with_logits(logits.float(), target)
        return bce + dice_loss(logits.float().flatten(1), target.flatten(1)).mean()

    # --------------------------------------------------------------------------------------------- forward
    def forward(self, outputs: dict[str, Any], batch: dict[str, Any]) -> dict[str, Tensor]:
        """All loss terms and the total `loss` (Eq. 19), as scalar tensors.

        Args:
            outputs: the network's outputs (docs/contracts.md section 3): `pred_logits`, `pred_masks`,
                `trimap_logits`, `alpha_pred` and, for deep supervision, `aux_outputs`.
            batch: the collated batch (section 2): `masks`, `trimaps`, `alphas`, `labels`, `valid`.

        Returns:
            The terms listed in the class docstring; `loss` is the one to back-propagate.
        """
        return self.losses_and_indices(outputs, batch)[0]

    def losses_and_indices(
        self, outputs: dict[str, Any], batch: dict[str, Any]
    ) -> tuple[dict[str, Tensor], Indices]:
        """`forward`'s loss terms and the final layer's assignment they used (validation's part IoUs read
        it): one (query_idx, target_idx) pair per image.

        Every layer is matched with one wait for the device (`HungarianMatcher.match_layers`) and the losses
        are computed in float32 with autocast off, whatever the network ran in. When a matching cost is not
        finite (NaN or inf outputs), `nonfinite_cost` is 1 and the total is NaN, so that under DDP every
        process's gradients are NaN after their all-reduce and every process skips the step
        (`E2EHIMModule.on_before_optimizer_step`), instead of one process raising and the others waiting.
        """
        with torch.autocast(device_type=outputs["pred_logits"].device.type, enabled=False):
            return self._losses_and_indices(outputs, batch)

    def _losses_and_indices(
        self, outputs: dict[str, Any], batch: dict[str, Any]
    ) -> tuple[dict[str, Tensor], Indices]:
        num_people = self.num_people(batch["valid"])
        gt_low = downsample_masks(batch["masks"], tuple(outputs["pred_masks"].shape[-2:]), self.mask_target)
        layers = [outputs]
        if self.deep_supervision:
            layers += list(outputs.get("aux_outputs") or [])
        targets = [self._mask_targets(layer, batch, gt_low) for layer in layers]
        layer_indices, finite = self.matcher.match_layers(layers, targets, batch["valid"])
        pairs = self.flat_pairs(layer_indices, outputs["pred_logits"].device)
        losses = self.perception_terms(outputs, pairs[0], batch, targets[0], num_people)
        losses.update(self.matting_terms(outputs, pairs[0], batch, num_people))

        zero = outputs["pred_logits"].new_zeros((), dtype=torch.float32)
        aux = dict.fromkeys(PERCEPTION_KEYS, zero)
        for layer, layer_pairs, layer_targets in zip(layers[1:], pairs[1:], targets[1:]):
            terms = self.perception_terms(layer, layer_pairs, batch, layer_targets, num_people)
            aux = {k: aux[k] + terms[k] for k in PERCEPTION_KEYS}
        losses.update({f"{k}_aux": v for k, v in aux.items()})

        for suffix in ("", "_aux"):
            seg = self.lambda_b * losses[f"loss_focal{suffix}"] + self.lambda_d * losses[f"loss_dice{suffix}"]
            losses[f"loss_seg{suffix}"] = seg
            losses[f"loss_perception{suffix}"] = (
                self.lambda_c * losses[f"loss_cls{suffix}"] + self.lambda_s * seg
            )
        losses["loss_alpha"] = (
            self.lambda_pu * losses["loss_alpha_pu"] + self.lambda_gu * losses["loss_alpha_gu"]
        )
        losses["loss_matting"] = self.lambda_t * losses["loss_tri"] + self.lambda_alpha * losses["loss_alpha"]
        perception = losses["loss_perception"] + self.aux_weight * losses["loss_perception_aux"]
        losses["loss"] = self.lambda_p * perception + self.lambda_m * losses["loss_matting"]
        if self.person_weight and "pred_person" in outputs:
            losses["loss_person"] = self.person_loss(outputs["pred_person"], batch)
            losses["loss"] = losses["loss"] + self.person_weight * losses["loss_person"]
        losses["nonfinite_cost"] = zero if finite else torch.ones_like(zero)
        if not finite:  # NaN times every gradient, even a zero one: every process's all-reduced step is NaN
            losses["loss"] = losses["loss"] * float("nan")
        return losses, layer_indices[0]
