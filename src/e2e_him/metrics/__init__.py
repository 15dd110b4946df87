"""Metric definitions: E2E-HIM's EMSE/EMAD/REC/ACC (Eq. 20), InstMatt's IMQ, MaGGIe's per-person errors and
temporal metrics, whole-image human-matting errors, and the one builder of them all (`build_metrics`).

The metric families are torchmetrics `Metric`s with `update(preds, targets)` taking one (K, H, W) tensor per
image and `compute()` returning a flat dict; `accumulate(stats)` adds statistics a worker computed, through
`update(Precomputed(stats))`. Scoring folders of predicted mattes with them is `e2e_him.evaluation`'s job.
"""

from e2e_him.metrics.errors import (
    connectivity_error_map,
    grad_conn_sums,
    gradient_error_map,
    gradient_kernels,
    gradient_magnitude,
    largest_component,
)
from e2e_him.metrics.families import METRIC_KINDS, build_metrics, validation_kinds
from e2e_him.metrics.human_matting import HumanMattingMetrics, human_matting_errors, merge_people
from e2e_him.metrics.imq import ImqImageStats, IMQMetric, LiteIMQMetric, imq_image_stats, pair_similarities
from e2e_him.metrics.instance_matting import InstanceMatch, InstanceMattingMetrics, match_image
from e2e_him.metrics.maggie import MaggieMetrics, image_errors, maggie_trimap, metric_keys
from e2e_him.metrics.matching import (
    binarize,
    format_threshold,
    hungarian_match,
    mask_iou,
    match_instances,
    threshold_match,
)
from e2e_him.metrics.precomputed import Precomputed
from e2e_him.metrics.temporal import TemporalMetrics

__all__ = [
    "METRIC_KINDS",
    "HumanMattingMetrics",
    "IMQMetric",
    "ImqImageStats",
    "InstanceMatch",
    "InstanceMattingMetrics",
    "LiteIMQMetric",
    "MaggieMetrics",
    "Precomputed",
    "TemporalMetrics",
    "binarize",
    "build_metrics",
    "connectivity_error_map",
    "format_threshold",
    "grad_conn_sums",
    "gradient_error_map",
    "gradient_kernels",
    "gradient_magnitude",
    "human_matting_errors",
    "hungarian_match",
    "image_errors",
    "imq_image_stats",
    "largest_component",
    "maggie_trimap",
    "mask_iou",
    "match_image",
    "match_instances",
    "merge_people",
    "metric_keys",
    "pair_similarities",
    "threshold_match",
    "validation_kinds",
]
