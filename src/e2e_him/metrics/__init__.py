"""Evaluation metrics: the paper's EMSE/EMAD/REC/ACC (Eq. 20), InstMatt's IMQ, human-matting errors.

All three are torchmetrics `Metric`s with `update(preds, targets)` taking one (K, H, W) tensor per image and
`compute()` returning a flat dict; `score_prediction_dir` and `write_report` score and report folders of PNGs.
"""

from e2e_him.metrics.errors import (
    connectivity_error_map,
    gradient_error_map,
    gradient_kernels,
    gradient_magnitude,
    largest_component,
)
from e2e_him.metrics.human_matting import HumanMattingMetrics, human_matting_errors, merge_people
from e2e_him.metrics.imq import ImqImageStats, IMQMetric, imq_image_stats, pair_similarities
from e2e_him.metrics.instance_matting import InstanceMatch, InstanceMattingMetrics, match_image
from e2e_him.metrics.matching import binarize, format_threshold, hungarian_match, mask_iou, match_instances
from e2e_him.metrics.offline import (
    iter_ground_truth,
    per_image_row,
    per_image_rows,
    read_instance_folder,
    score_prediction_dir,
)
from e2e_him.metrics.report import markdown_tables, write_report

__all__ = [
    "HumanMattingMetrics",
    "IMQMetric",
    "ImqImageStats",
    "InstanceMatch",
    "InstanceMattingMetrics",
    "binarize",
    "connectivity_error_map",
    "format_threshold",
    "gradient_error_map",
    "gradient_kernels",
    "gradient_magnitude",
    "human_matting_errors",
    "hungarian_match",
    "imq_image_stats",
    "iter_ground_truth",
    "largest_component",
    "markdown_tables",
    "mask_iou",
    "match_image",
    "match_instances",
    "merge_people",
    "pair_similarities",
    "per_image_row",
    "per_image_rows",
    "read_instance_folder",
    "score_prediction_dir",
    "write_report",
]
