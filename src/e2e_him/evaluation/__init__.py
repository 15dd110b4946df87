"""Scoring predicted mattes with the metrics of `e2e_him.metrics`: folders of any method's predictions
(images, M-HIM2K's mask sets, V-HIM60's videos) in worker processes, a checkpoint's predictions on a split,
the report files (metrics.json, metrics.md, per_image.csv, skipped_files.tsv), the worst images and the
paper's ablation tables. Used by `python -m e2e_him.eval` and scripts/collect_table.py.
"""

from e2e_him.evaluation.folders import Problem, read_instance_folder, read_mattes
from e2e_him.evaluation.offline import (
    Scored,
    iter_ground_truth,
    score_images,
    score_mask_sets,
    score_prediction_dir,
    score_videos,
)
from e2e_him.evaluation.report import markdown_tables, write_report
from e2e_him.evaluation.scoring import ImageTask, ScoreOptions, per_image_row, score_image

__all__ = [
    "ImageTask",
    "Problem",
    "ScoreOptions",
    "Scored",
    "iter_ground_truth",
    "markdown_tables",
    "per_image_row",
    "read_instance_folder",
    "read_mattes",
    "score_image",
    "score_images",
    "score_mask_sets",
    "score_prediction_dir",
    "score_videos",
    "write_report",
]
