"""Evaluation metrics: E2E-HIM's EMSE/EMAD/REC/ACC (Eq. 20), InstMatt's IMQ, MaGGIe's per-person errors and
temporal metrics, whole-image human-matting errors; and the scoring of folders of predicted mattes.

The metric families are torchmetrics `Metric`s with `update(preds, targets)` taking one (K, H, W) tensor per
image and `compute()` returning a flat dict; `accumulate(stats)` adds statistics a worker computed, through
`update(Precomputed(stats))`. `score_images` / `score_mask_sets` / `score_videos` score folders
of PNGs in worker processes and `write_report` writes metrics.json, metrics.md, per_image.csv.
"""

from e2e_him.metrics.errors import (
    connectivity_error_map,
    grad_conn_sums,
    gradient_error_map,
    gradient_kernels,
    gradient_magnitude,
    largest_component,
)
from e2e_him.metrics.folders import Problem, read_instance_folder, read_mattes
from e2e_him.metrics.human_matting import HumanMattingMetrics, human_matting_errors, merge_people
from e2e_him.metrics.imq import ImqImageStats, IMQMetric, imq_image_stats, pair_similarities
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
from e2e_him.metrics.offline import (
    Scored,
    iter_ground_truth,
    score_images,
    score_mask_sets,
    score_prediction_dir,
    score_videos,
)
from e2e_him.metrics.precomputed import Precomputed
from e2e_him.metrics.report import markdown_tables, write_report
from e2e_him.metrics.scoring import ImageTask, ScoreOptions, per_image_row, score_image
from e2e_him.metrics.temporal import TemporalMetrics

__all__ = [
    "HumanMattingMetrics",
    "IMQMetric",
    "ImageTask",
    "ImqImageStats",
    "InstanceMatch",
    "InstanceMattingMetrics",
    "MaggieMetrics",
    "Precomputed",
    "Problem",
    "ScoreOptions",
    "Scored",
    "TemporalMetrics",
    "binarize",
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
    "iter_ground_truth",
    "largest_component",
    "maggie_trimap",
    "markdown_tables",
    "mask_iou",
    "match_image",
    "match_instances",
    "merge_people",
    "metric_keys",
    "pair_similarities",
    "per_image_row",
    "read_instance_folder",
    "read_mattes",
    "score_image",
    "score_images",
    "score_mask_sets",
    "score_prediction_dir",
    "score_videos",
    "threshold_match",
    "write_report",
]
