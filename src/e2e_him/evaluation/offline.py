"""Scoring folders of predicted mattes (this project's or another method's) against instance ground truth.

Layout of a prediction folder: one sub-folder per image, named like the ground truth's (`<stem>/`, or
`<split>/<stem>/` for data sets with splits), holding one grayscale PNG per person. An empty sub-folder
means no people; a missing one is scored as zero predictions (its people count as missed) and listed.
`score_images` scores image tasks in worker processes; `score_mask_sets` runs it once per M-HIM2K mask set
and adds the mean and standard deviation over the sets; `score_videos` does the same for video sets.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from e2e_him.data.io import image_size, list_images
from e2e_him.evaluation.folders import Problem, read_instance_folder
from e2e_him.evaluation.runner import Accumulator, run_tasks
from e2e_him.evaluation.scoring import METRIC_NAMES, ImageTask, ScoreOptions, score_image
from e2e_him.evaluation.video import VideoTask, score_video

log = logging.getLogger(__name__)
_MAX_NAMES_IN_WARNING = 20


@dataclass
class Scored:
    """A scored run: flat metrics, one row per image (per frame for videos), per-video rows, problems."""

    metrics: dict[str, float]
    rows: list[dict]
    problems: list[Problem] = field(default_factory=list)
    video_rows: list[dict] = field(default_factory=list)
    images: dict[str, int] = field(default_factory=dict)  # images (frames) scored per group


def flatten(groups: dict[str, dict[str, float]]) -> dict[str, float]:
    """{group: metrics} -> flat keys: the "" group as it is, the others as "<group>/<key>" (if several)."""
    out = dict(groups.get("", {}))
    named = [g for g in groups if g]
    if len(named) > 1:
        for g in named:
            out.update({f"{g}/{k}": v for k, v in groups[g].items()})
    return out


def mean_and_std(per_set: dict[str, dict[str, float]]) -> dict[str, float]:
    """Across mask sets: "<key>" = mean, "<key>_std" = standard deviation (numpy's, ddof 0), then per set."""
    keys = list(dict.fromkeys(k for m in per_set.values() for k in m))
    out: dict[str, float] = {}
    for k in keys:
        values = np.array([m[k] for m in per_set.values() if k in m], dtype=np.float64)
        out[k] = float(values.mean())
        out[f"{k}_std"] = float(values.std())
    for s, m in per_set.items():
        out.update({f"{s}/{k}": v for k, v in m.items()})
    return out


def stray_folders(pred_folders: Iterable[Path | None], looked_in: Iterable[Path] | None = None) -> list[Path]:
    """Sub-folders next to the expected prediction folders that no image (video) asked for.

    Args:
        pred_folders: the prediction folders of the images (None: none found).
        looked_in: every folder a prediction was looked for in (several layouts, existing or not); default
            `pred_folders`. Their parents are searched; they and their ancestors are not strays unless read.
    """
    expected = {Path(p).resolve() for p in pred_folders if p is not None}
    looked = {Path(p).resolve() for p in looked_in} | expected if looked_in is not None else expected
    parents = {p.parent for p in looked}
    ancestors = {a for p in looked for a in p.parents}
    stray = []
    for parent in sorted(parents):
        if parent.is_dir():
            for d in sorted(parent.iterdir()):
                r = d.resolve()
                if d.is_dir() and not d.name.startswith(".") and r not in expected and r not in ancestors:
                    stray.append(d)
    return stray


def warn_names(message: str, names: Sequence[str]) -> None:
    shown = ", ".join(names[:_MAX_NAMES_IN_WARNING]) + (" ..." if len(names) > _MAX_NAMES_IN_WARNING else "")
    warnings.warn(f"{message} ({len(names)}): {shown}", UserWarning, stacklevel=3)


def score_images(
    tasks: Sequence[ImageTask],
    options: ScoreOptions,
    workers: int | str | None = "auto",
    progress: bool = True,
    desc: str = "score",
) -> Scored:
    """Score image tasks (in `workers` processes); metrics per group ("<split>/<key>") and for all images."""
    acc = Accumulator(options)
    rows, problems = [], []
    for result in run_tasks(score_image, tasks, options, workers, desc, progress):
        acc.add(result, [result.group] if result.group else [])
        rows.append(result.row)
        problems += result.problems
    for d in stray_folders(t.pred_folder for t in tasks):
        problems.append(Problem(str(d), "prediction folder without ground truth", "ignored"))
    return Scored(flatten(acc.compute()), rows, problems, images=acc.images())


def score_videos(
    tasks: Sequence[VideoTask],
    options: ScoreOptions,
    workers: int | str | None = "auto",
    progress: bool = True,
) -> Scored:
    """Score video tasks: per-frame rows, per-video rows, metrics per split and for all videos.

    Prediction folders next to the layouts looked in (`VideoTask.looked_in`) that no video asked for (another
    video, another split) are listed as problems and ignored, like predicted frames a video does not have.
    """
    acc = Accumulator(options)
    rows, video_rows, problems = [], [], []
    for result in run_tasks(score_video, tasks, options, workers, "videos", progress):
        acc.add_video(result, [result.group] if result.group else [])
        rows += [f.row for f in result.frames]
        video_rows.append(result.row)
        problems += result.problems
    looked_in = [c for t in tasks for c in t.looked_in]
    for d in stray_folders((t.pred_dir for t in tasks), looked_in):
        problems.append(Problem(str(d), "prediction folder without ground truth", "ignored"))
    return Scored(flatten(acc.compute()), rows, problems, video_rows, acc.images())


def score_mask_sets(
    tasks_per_set: dict[str, Sequence[ImageTask]],
    options: ScoreOptions,
    workers: int | str | None = "auto",
    progress: bool = True,
) -> Scored:
    """Score one method once per mask set (M-HIM2K); mean and std over the sets (MaGGIe's Table 5)."""
    per_set, rows, problems, images = {}, [], [], {}
    for name, tasks in tasks_per_set.items():
        scored = score_images(tasks, options, workers, progress, desc=name)
        per_set[name] = scored.metrics
        rows += [{"mask_set": name, **r} for r in scored.rows]
        problems += scored.problems
        images[name] = scored.images.get("", 0)
    return Scored(mean_and_std(per_set), rows, problems, images=images)


def iter_ground_truth(alpha_root: Path, image_root: Path | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (stem, (K, H, W) mattes) for every sub-folder of `alpha_root`, sorted by stem.

    Args:
        alpha_root: folder of `<stem>/NN.png` ground-truth mattes.
        image_root: folder of the photos `<stem>.<ext>`; gives the size of images without people (empty
            folders) and checks the mattes' size.
    """
    alpha_root = Path(alpha_root)
    photos = {p.stem: p for p in list_images(image_root)} if image_root is not None else {}
    for folder in sorted(p for p in alpha_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        size = image_size(photos[folder.name]) if folder.name in photos else None
        yield folder.name, read_instance_folder(folder, size)


def score_prediction_dir(
    pred_dir: Path,
    ground_truth: Iterable[tuple[str, np.ndarray]],
    metrics: Sequence[str] = ("instance", "imq"),
    iou_thresholds: Sequence[float] = (0.5, 0.75),
    binarize_threshold: float = 0.5,
    resize: str = "bilinear",
    pairing: str = "iou",
    workers: int | str | None = 0,
    progress: bool = False,
) -> tuple[dict[str, float], list[dict]]:
    """Score `pred_dir/<name>/*.png` against in-memory ground truth, image by image.

    Args:
        pred_dir: root of the predicted mattes, one sub-folder per image name.
        ground_truth: (name, (Kg, H, W) mattes in [0, 1]) per image, e.g. `iter_ground_truth(...)`.
        metrics: any of `scoring.METRIC_NAMES` except "temporal".
        iou_thresholds: IoU thresholds of the instance metrics and IMQ.
        binarize_threshold: mask threshold for the IoU of Eq. 20 and of the IoU pairing (IMQ keeps its 0).
        resize: rule for predictions at another scale (`folders.RESIZE_RULES`) or "error".
        pairing: how MaGGIe's per-person errors pair predictions with people ("iou" or "name").
        workers: processes (0: this one).
        progress: show a progress bar.

    Returns:
        metrics: flat dict of floats; rows: one per image in ground-truth order. Missing prediction folders
        and prediction folders without ground truth are listed in a `UserWarning` each, skipped or resized
        files in another.

    Raises:
        ValueError: an unknown metric name, a missing `pred_dir`, or (resize="error") a file of another size.
    """
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}: choose from {METRIC_NAMES}")
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise ValueError(f"{pred_dir}: prediction folder not found")
    options = ScoreOptions(
        tuple(metrics), tuple(float(t) for t in iou_thresholds), binarize_threshold, pairing, resize
    )
    tasks = []
    for name, gt in ground_truth:
        gt = np.ascontiguousarray(gt, dtype=np.float32)
        if gt.ndim != 3:
            raise ValueError(f"ground truth of {name!r}: expected (K, H, W) mattes, got shape {gt.shape}")
        tasks.append(ImageTask(name, pred_dir / name, gt=gt, size=tuple(gt.shape[-2:])))
    scored = score_images(tasks, options, workers, progress)
    report_problems(scored.problems, str(pred_dir))
    return scored.metrics, scored.rows


def report_problems(problems: Sequence[Problem], where: str) -> None:
    """One `UserWarning` per kind of problem, naming the files (the full list goes to skipped_files.tsv)."""
    kinds: dict[str, list[str]] = {}
    for p in problems:
        if p.reason == "no prediction folder":
            key = f"{where}: no prediction folder for some images; their people count as missed"
        elif p.reason == "prediction folder without ground truth":
            key = f"{where}: prediction folders without ground truth, ignored"
        else:
            key = f"{where}: files skipped or changed while scoring"
        kinds.setdefault(key, []).append(p.path)
    for message, names in kinds.items():
        warn_names(message, names)
