"""Scoring one image's predicted mattes against its ground truth with every metric family, in one pass.

`score_image(task, options)` is what a worker process runs: it reads the ground truth and the prediction
folder, and returns the per-image statistics of each family (Eq. 20 matches, IMQ pairs, whole-image errors,
MaGGIe's per-person errors) for the metric objects of the main process to accumulate, plus a row of
per_image.csv and the files it had to skip or resize. The costly gradient and connectivity maps of a pair
are computed once and shared by IMQ and the per-person errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from e2e_him.data.io import ImageReadError, read_alpha
from e2e_him.data.mask_sets import any_mask_drawn
from e2e_him.evaluation.folders import Mattes, Problem, read_mattes
from e2e_him.metrics.errors import grad_conn_sums
from e2e_him.metrics.human_matting import human_matting_errors
from e2e_him.metrics.imq import ImqImageStats, imq_image_stats
from e2e_him.metrics.instance_matting import InstanceMatch, match_image
from e2e_him.metrics.maggie import image_errors
from e2e_him.metrics.matching import format_threshold, iou_matrix, pair_by_iou, pair_by_name

METRIC_NAMES = ("instance", "imq", "human", "maggie", "temporal")
PAIRINGS = ("iou", "name")


@dataclass(frozen=True)
class ScoreOptions:
    """What to compute for every image (plain values: sent to worker processes).

    Attributes:
        metrics: any of "instance" (Eq. 20), "imq" (InstMatt), "human" (whole-image errors), "maggie"
            (MaGGIe's per-person errors, both scales), "temporal" (videos: dtSSD, MESSDdt).
        iou_thresholds: TH of Eq. 20 and IMQ.
        binarize_threshold: mask level of Eq. 20's IoU and of the IoU pairing (IMQ keeps InstMatt's 0).
        pairing: how MaGGIe's per-person errors pair predictions with people: "iou" (Hungarian on IoU, for
            methods that find people themselves) or "name" (same file name, for mask-guided methods).
        resize: rule for predictions at another scale than the ground truth (`folders.RESIZE_RULES`, "error").
        grad_conn: Grad and Conn of the "human" and "maggie" families (IMQ always needs them).
        video_protocol: how MaGGIe's code groups a video's frames ("clip3": its test.py, "video": its
            tools/eval_baseline.py), `temporal.maggie_groups`.
        messddt: compute MESSDdt (optical flow per person and frame pair: the slowest metric).
    """

    metrics: tuple[str, ...] = ("instance", "imq")
    iou_thresholds: tuple[float, ...] = (0.5, 0.75)
    binarize_threshold: float = 0.5
    pairing: str = "iou"
    resize: str = "bilinear"
    grad_conn: bool = True
    video_protocol: str = "clip3"
    messddt: bool = True

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRIC_NAMES]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}: choose from {METRIC_NAMES}")
        if self.pairing not in PAIRINGS:
            raise ValueError(f"pairing {self.pairing!r}: choose from {PAIRINGS}")


@dataclass(frozen=True)
class ImageTask:
    """One image to score. Ground truth either as files (`gt_files`) or as an array (`gt`, (K, H, W)).

    Attributes:
        name: the image's name in reports (e.g. "natural/<stem>").
        pred_folder: its prediction folder; a missing folder means no predictions.
        pred: (P, H, W) predicted mattes instead of a folder (a model's outputs); pred_names name them.
        gt_files: one matte file per person.
        gt: (K, H, W) float mattes instead of files; gt_names then name them (default "00", "01", ...).
        size: (H, W) of the photo, for images without people.
        subset: the people (file stems) MaGGIe's per-person errors score (M-HIM2K: those with a mask file in
            the set); None = all.
        masks: M-HIM2K: the image's guidance-mask files in one mask set. The worker decodes them; when none
            has a non-zero pixel, MaGGIe's loader skips the image: its errors score nobody (the row says why).
        group: the subset of the data set the image belongs to (a split such as "natural"), "" for none.
        image: the photo, for pictures.
    """

    name: str
    pred_folder: Path | None = None
    pred: np.ndarray | None = None
    pred_names: tuple[str, ...] | None = None
    gt_files: tuple[Path, ...] = ()
    gt: np.ndarray | None = None
    gt_names: tuple[str, ...] | None = None
    size: tuple[int, int] | None = None
    subset: tuple[str, ...] | None = None
    masks: tuple[Path, ...] | None = None
    group: str = ""
    image: Path | None = None


@dataclass
class ImageResult:
    """What one image contributes: per-family statistics (None when not computed), its row, its problems."""

    name: str
    group: str
    match: InstanceMatch | None = None
    imq: ImqImageStats | None = None
    human: dict[str, float] | None = None
    maggie: dict[str, np.ndarray] | None = None
    row: dict = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    scored: bool = True


def read_ground_truth(task: ImageTask) -> tuple[np.ndarray, list[str], list[Problem]]:
    """(K, H, W) ground truth of a task and its names; problems make the image unscorable (K = -1)."""
    if task.gt is not None:
        gt = np.asarray(task.gt, dtype=np.float32)
        names = list(task.gt_names) if task.gt_names is not None else [f"{k:02d}" for k in range(len(gt))]
        return gt, names, []
    mattes, problems = [], []
    for f in task.gt_files:
        try:
            mattes.append(read_alpha(f))
        except ImageReadError as err:
            problems.append(Problem(str(f), f"ground truth unreadable ({err})", "image not scored"))
    if problems:
        return np.zeros((0, 0, 0), np.float32), [], problems
    shapes = {m.shape for m in mattes} | ({tuple(task.size)} if task.size and mattes else set())
    if len(shapes) > 1:
        where = str(task.gt_files[0].parent)
        return (
            np.zeros((0, 0, 0), np.float32),
            [],
            [Problem(where, f"ground-truth mattes of different sizes {sorted(shapes)}", "image not scored")],
        )
    if mattes:
        return np.stack(mattes), [Path(f).stem for f in task.gt_files], []
    if task.size is None:
        return (
            np.zeros((0, 0, 0), np.float32),
            [],
            [
                Problem(
                    task.name,
                    "no ground-truth people and no photo to give the image size",
                    "image not scored",
                )
            ],
        )
    return np.zeros((0, *task.size), np.float32), [], []


class PairSums:
    """DIM gradient and connectivity sums of (prediction, person) pairs, once per pair (None: missed)."""

    def __init__(self, preds: np.ndarray, gts: np.ndarray):
        self.preds, self.gts = preds, gts
        self.cache: dict[tuple[int | None, int], dict[str, float]] = {}

    def __call__(self, p: int | None, g: int) -> dict[str, float]:
        if (p, g) not in self.cache:
            pred = self.preds[p] if p is not None else np.zeros_like(self.gts[g])
            self.cache[(p, g)] = grad_conn_sums(pred, self.gts[g], 0.0)  # union of alpha > 0: InstMatt's
        return self.cache[(p, g)]


def instance_statistics(
    pred: np.ndarray,
    gt: np.ndarray,
    options: ScoreOptions,
    sums: PairSums | None = None,
    iou: np.ndarray | None = None,
) -> tuple[InstanceMatch | None, ImqImageStats | None]:
    """Eq. 20's matches and IMQ's pairs of one image; all-zero ground-truth mattes are not people here.

    `iou`: the (Kp, Kg) IoU of pred and all of gt at `options.binarize_threshold`, when already computed.
    """
    people = np.flatnonzero(gt.reshape(len(gt), -1).any(1)) if len(gt) else np.zeros(0, np.int64)
    pred_t = torch.from_numpy(np.ascontiguousarray(pred))
    gt_t = torch.from_numpy(np.ascontiguousarray(gt[people]))
    match = imq = None
    if "instance" in options.metrics:
        sub = iou[:, people] if iou is not None else None
        match = match_image(pred_t, gt_t, options.binarize_threshold, options.iou_thresholds, sub)
    if "imq" in options.metrics:
        fn = (lambda p, g: sums(p, int(people[g]))) if sums is not None else None
        imq = imq_image_stats(pred_t, gt_t, options.iou_thresholds, 0.0, pair_sums=fn)
    return match, imq


def maggie_pairs(
    pred: Mattes,
    gt_names: Sequence[str],
    options: ScoreOptions,
    subset: Sequence[str] | None,
    iou: np.ndarray,
) -> tuple[list[int], list[int | None]]:
    """The people MaGGIe's errors score (indices into gt) and the prediction paired with each (or None).

    `iou`: (Kp, Kg) IoU of the predictions and all people at `options.binarize_threshold`.
    """
    keep = list(range(len(gt_names)))
    if subset is not None:
        wanted = set(subset)
        keep = [k for k in keep if gt_names[k] in wanted]
    if options.pairing == "name":
        return keep, pair_by_name(pred.names, [gt_names[k] for k in keep])
    return keep, pair_by_iou(iou[:, keep])


def instance_row(name: str, match: InstanceMatch, thresholds: Sequence[float], gt_names, pred_names) -> dict:
    """Columns of per_image.csv from Eq. 20's matching (see `per_image_row`)."""
    h = match.hungarian
    row: dict = {
        "num_gt": match.num_gt,
        "num_pred": match.num_pred,
        "mean_iou": float(h.iou.mean()) if len(h) else None,
        "pair_ious": ";".join(
            f"{gt_names[g]}:{pred_names[p]}={v:.4f}" for g, p, v in zip(h.gt_index, h.pred_index, h.iou)
        ),
    }
    for th in thresholds:
        c = match.at(th)
        s = format_threshold(th)
        n = len(c)
        row[f"matched_{s}"] = n
        row[f"fp_{s}"] = match.num_pred - n
        row[f"fn_{s}"] = match.num_gt - n
        row[f"emse_{s}"] = float(c.mse.mean()) if n else None
        row[f"emad_{s}"] = float(c.mad.mean()) if n else None
    return row


def per_image_row(name: str, match: InstanceMatch, iou_thresholds: Sequence[float], prediction_missing=False):
    """One row of per_image.csv from an image's Eq. 20 matching (people and predictions named by index).

    Columns: name, prediction_missing, num_gt, num_pred, mean_iou (of the min(Kp, Kg) Hungarian pairs,
    passed or not), pair_ious ("gt:pred=iou" per pair), then for each TH: matched_TH (N_TH of this image),
    fp_TH, fn_TH, emse_TH, emad_TH (means over this image's correct pairs, None when there is none).
    """
    names_g = [f"{k}" for k in range(match.num_gt)]
    names_p = [f"{k}" for k in range(match.num_pred)]
    row = {"name": name, "prediction_missing": prediction_missing}
    return {**row, **instance_row(name, match, iou_thresholds, names_g, names_p)}


def mask_set_skip(task: ImageTask, problems: list[Problem]) -> str | None:
    """Why MaGGIe's loader skips an M-HIM2K task's image (None when it does not): no guidance mask, or none
    with a non-zero pixel. Decodes the masks (in the worker); unreadable ones go to `problems`."""
    drawn, unreadable = any_mask_drawn(task.masks or (), task.name)
    problems += [Problem(str(p.path), p.reason, "counted as an empty mask") for p in unreadable]
    if drawn:
        return None
    if not task.masks:
        return "no guidance mask in this mask set"
    return "every guidance mask is empty or unreadable" if unreadable else "every guidance mask is empty"


def score_image(task: ImageTask, options: ScoreOptions) -> ImageResult:
    """Score one image with every family of `options.metrics` (runs in a worker process)."""
    result = ImageResult(task.name, task.group)
    gt, gt_names, problems = read_ground_truth(task)
    if problems:
        result.problems, result.scored = problems, False
        result.row = {"name": task.name, "group": task.group, "scored": False}
        return result
    size = gt.shape[-2:]
    missing = task.pred is None and (task.pred_folder is None or not Path(task.pred_folder).is_dir())
    if task.pred is not None:
        names = (
            list(task.pred_names)
            if task.pred_names is not None
            else [f"{k:02d}" for k in range(len(task.pred))]
        )
        pred = Mattes(np.asarray(task.pred, dtype=np.float32), names)
    elif missing:
        pred = Mattes(np.zeros((0, *size), np.float32), [])
        result.problems.append(
            Problem(str(task.pred_folder), "no prediction folder", "its people count as missed")
        )
    else:
        pred = read_mattes(Path(task.pred_folder), size, options.resize)
        result.problems += pred.problems
    sums = PairSums(pred.alphas, gt)
    iou = iou_matrix(torch.from_numpy(pred.alphas), torch.from_numpy(gt), options.binarize_threshold)
    result.match, result.imq = instance_statistics(pred.alphas, gt, options, sums, iou)
    row: dict = {"name": task.name, "group": task.group, "scored": True, "prediction_missing": missing}
    if result.match is not None:
        people = [gt_names[k] for k in range(len(gt)) if gt[k].any()]
        row.update(instance_row(task.name, result.match, options.iou_thresholds, people, pred.names))
    else:
        row.update(num_gt=len(gt), num_pred=len(pred.alphas))
    if "human" in options.metrics:
        merged = np.clip(pred.alphas.sum(0), 0.0, 1.0) if len(pred.alphas) else np.zeros(size, np.float32)
        result.human = human_matting_errors(merged, np.clip(gt.sum(0), 0.0, 1.0), options.grad_conn)
        row.update({f"human_{k}": v for k, v in result.human.items()})
    if "maggie" in options.metrics:
        subset = task.subset
        if task.masks is not None:
            row["maggie_skipped"] = mask_set_skip(task, result.problems)
            subset = () if row["maggie_skipped"] else subset
        keep, paired = maggie_pairs(pred, gt_names, options, subset, iou)
        preds = [pred.alphas[p] if p is not None else None for p in paired]
        result.maggie = image_errors(
            preds, [gt[k] for k in keep], options.grad_conn, lambda i: sums(paired[i], keep[i])
        )
        row["maggie_people"] = len(keep)
        row["maggie_missed"] = sum(p is None for p in paired)
        for key, values in result.maggie.items():
            ok = np.isfinite(values)
            row[key] = float(values[ok].mean()) if ok.any() else None
    row["problems"] = len(result.problems)
    result.row = row
    return result
