"""Training objective: bipartite matching (Eq. 9-12) and the perception and matting losses (Eq. 13-19)."""

from e2e_him.losses.criterion import SetCriterion
from e2e_him.losses.functional import (
    class_cost,
    dice_cost,
    dice_loss,
    downsample_masks,
    downsample_trimaps,
    focal_bce_cost,
    focal_bce_loss,
    focal_cross_entropy,
    point_sample,
    predicted_unknown,
    region_l1,
    uncertain_point_coords,
    weighted_cross_entropy,
)
from e2e_him.losses.matching import HungarianMatcher

__all__ = [
    "HungarianMatcher",
    "SetCriterion",
    "class_cost",
    "dice_cost",
    "dice_loss",
    "downsample_masks",
    "downsample_trimaps",
    "focal_bce_cost",
    "focal_bce_loss",
    "focal_cross_entropy",
    "point_sample",
    "predicted_unknown",
    "region_l1",
    "uncertain_point_coords",
    "weighted_cross_entropy",
]
