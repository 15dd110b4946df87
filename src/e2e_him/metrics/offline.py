"""Scoring folders of predicted mattes (this project's or another's) against instance ground truth.

Layout of a prediction (and ground-truth) folder: one sub-folder per image, named by the image's stem, holding
one grayscale PNG per person: `<stem>/00.png, 01.png, ...` or unpadded `0.png, 1.png, ..., 10.png` (sorted by
number). An empty sub-folder means no people; a missing one is scored as zero predictions with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from e2e_him.data.io import image_size, list_images, read_alpha
from e2e_him.metrics.human_matting import HumanMattingMetrics
from e2e_him.metrics.imq import IMQMetric
from e2e_him.metrics.instance_matting import InstanceMatch, InstanceMattingMetrics, match_image
from e2e_him.metrics.matching import check_thresholds, format_threshold

METRIC_NAMES = ("instance", "imq", "human")
_MAX_NAMES_IN_WARNING = 20


def _matte_order(path: Path) -> tuple[int, float, str]:
    """Sort key: numbered files by number (0, 1, 2, ..., 10), then any others by name."""
    stem = path.stem
    return (0, float(int(stem)), stem) if stem.isdigit() else (1, 0.0, stem)


def read_instance_folder(folder: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read one image's per-person mattes.

    Args:
        folder: `<root>/<stem>/` holding one matte file per person (hidden and non-image files ignored).
        size: the expected (H, W); needed when the folder is empty, checked against every file otherwise.

    Returns:
        (K, H, W) float32 in [0, 1], people in numeric file order; (0, H, W) for an empty folder.

    Raises:
        ValueError: a file's size differs from `size` or from the folder's first file (the message names it),
            or the folder is empty and no size is given.
    """
    folder = Path(folder)
    files = sorted(list_images(folder), key=_matte_order)
    if not files:
        if size is None:
            raise ValueError(f"{folder}: no mattes and no image size given, cannot build a (0, H, W) array")
        return np.zeros((0, *size), dtype=np.float32)
    alphas = []
    for f in files:
        a = read_alpha(f)
        expected = tuple(size) if size is not None else alphas[0].shape if alphas else a.shape
        if a.shape != tuple(expected):
            raise ValueError(
                f"{f}: matte size {a.shape[0]}x{a.shape[1]} (HxW) differs from the expected "
                f"{expected[0]}x{expected[1]}"
            )
        alphas.append(a)
    return np.stack(alphas)


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


def per_image_row(
    name: str, match: InstanceMatch, iou_thresholds: Sequence[float], prediction_missing: bool = False
) -> dict:
    """One row of per_image.csv: counts, matches, errors and failures of one image (None where undefined).

    Columns: name, prediction_missing, num_gt, num_pred, mean_iou (of the min(Kp, Kg) one-to-one pairs, passed
    or not), pair_ious ("gt:pred=iou" for each pair), then for each TH: matched_TH, fp_TH, fn_TH, emse_TH,
    emad_TH (means over this image's correct pairs).
    """
    row: dict = {
        "name": name,
        "prediction_missing": prediction_missing,
        "num_gt": match.num_gt,
        "num_pred": match.num_pred,
        "mean_iou": float(match.iou.mean()) if len(match.iou) else None,
        "pair_ious": ";".join(
            f"{g}:{p}={v:.4f}" for g, p, v in zip(match.gt_index, match.pred_index, match.iou)
        ),
    }
    for th in iou_thresholds:
        ok = match.correct(th)
        n = int(ok.sum())
        s = format_threshold(th)
        row[f"matched_{s}"] = n
        row[f"fp_{s}"] = match.num_pred - n
        row[f"fn_{s}"] = match.num_gt - n
        row[f"emse_{s}"] = float(match.mse[ok].mean()) if n else None
        row[f"emad_{s}"] = float(match.mad[ok].mean()) if n else None
    return row


def per_image_rows(
    matches: Iterable[tuple[str, InstanceMatch]],
    iou_thresholds: Sequence[float] = (0.5, 0.75),
    missing: Iterable[str] = (),
) -> list[dict]:
    """`per_image_row` for each (name, match); names in `missing` are flagged as missing predictions."""
    missing = set(missing)
    return [per_image_row(n, m, iou_thresholds, n in missing) for n, m in matches]


def _warn_names(message: str, names: list[str]) -> None:
    shown = ", ".join(names[:_MAX_NAMES_IN_WARNING]) + (" ..." if len(names) > _MAX_NAMES_IN_WARNING else "")
    warnings.warn(f"{message} ({len(names)}): {shown}", UserWarning, stacklevel=3)


def score_prediction_dir(
    pred_dir: Path,
    ground_truth: Iterable[tuple[str, np.ndarray]],
    metrics: Sequence[str] = ("instance", "imq"),
    iou_thresholds: Sequence[float] = (0.5, 0.75),
    binarize_threshold: float = 0.5,
) -> tuple[dict[str, float], list[dict]]:
    """Score `pred_dir/<stem>/*.png` against ground truth, image by image.

    Args:
        pred_dir: root of the predicted mattes, one sub-folder per image stem.
        ground_truth: (stem, (Kg, H, W) mattes in [0, 1]) per image, e.g. `iter_ground_truth(...)`.
        metrics: any of "instance" (Eq. 20: EMSE/EMAD/REC/ACC), "imq" (InstMatt's IMQ/RQ/MQ), "human"
            (SAD/MSE/MAD/Grad/Conn of the summed prediction against the summed ground truth).
        iou_thresholds: IoU thresholds of the instance metrics and IMQ.
        binarize_threshold: mask threshold for the IoU of the instance metrics and the rows (IMQ keeps its 0).

    Returns:
        metrics: flat dict of floats (keys of the chosen metrics).
        rows: one `per_image_row` dict per image, in ground-truth order.

    Raises:
        ValueError: an unknown metric name, or a prediction file whose size differs from its ground truth.
    """
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}: choose from {METRIC_NAMES}")
    ths = check_thresholds(iou_thresholds)
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise ValueError(f"{pred_dir}: prediction folder not found")
    instance = (
        InstanceMattingMetrics(ths, binarize_threshold=binarize_threshold) if "instance" in metrics else None
    )
    imq = IMQMetric(ths) if "imq" in metrics else None
    human = HumanMattingMetrics() if "human" in metrics else None

    rows, missing, seen = [], [], set()
    for name, gt in ground_truth:
        seen.add(name)
        gt_t = torch.from_numpy(np.ascontiguousarray(gt, dtype=np.float32))
        if gt_t.ndim != 3:
            raise ValueError(
                f"ground truth of {name!r}: expected (K, H, W) mattes, got shape {tuple(gt_t.shape)}"
            )
        folder = pred_dir / name
        is_missing = not folder.is_dir()
        if not is_missing:
            pred = read_instance_folder(folder, size=tuple(gt_t.shape[-2:]))
        else:
            missing.append(name)
            pred = np.zeros((0, *gt_t.shape[-2:]), dtype=np.float32)
        pred_t = torch.from_numpy(pred)
        if instance is not None:
            instance.update([pred_t], [gt_t])
        match = match_image(pred_t, gt_t, binarize_threshold)  # again for the row: cheap next to PNG decoding
        if imq is not None:
            imq.update([pred_t], [gt_t])
        if human is not None:
            human.update([pred_t], [gt_t.sum(0).clamp(0.0, 1.0)])
        rows.append(per_image_row(name, match, ths, prediction_missing=is_missing))

    if missing:
        _warn_names(f"{pred_dir}: no prediction folder for some images; scored as zero predictions", missing)
    extra = sorted(
        p.name for p in pred_dir.iterdir() if p.is_dir() and p.name not in seen and not p.name.startswith(".")
    )
    if extra:
        _warn_names(f"{pred_dir}: prediction folders without ground truth, ignored", extra)

    results: dict[str, float] = {}
    for metric in (instance, imq, human):
        if metric is not None:
            results.update({k: float(v) for k, v in metric.compute().items()})
    return results, rows
