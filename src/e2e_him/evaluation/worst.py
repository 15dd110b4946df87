"""The worst images of a scored run and what the picture shows of each (`visual.worst` draws it).

Images are ranked by their failures at IoU 0.5 (missed people + wrong predictions, `errors_0.5`), then by
the mean per-person MAD (`MAD_x1e3`), then by EMAD at 0.5 (`rank_worst`); each is shown with its photo,
ground truth and (resized) prediction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from e2e_him.data.video_folder import frame_key
from e2e_him.evaluation.folders import read_mattes
from e2e_him.evaluation.scoring import ImageTask, read_ground_truth
from e2e_him.evaluation.video import VideoTask
from e2e_him.visual.worst import View

RANK_KEYS = ("errors_0.5", "MAD_x1e3", "emad_0.5")


def rank_worst(rows: Sequence[Mapping], n: int = 10, keys: Sequence[str] = RANK_KEYS) -> list[int]:
    """Indices of the `n` worst scored rows, sorting by `keys` in turn (larger is worse, missing is 0)."""

    def value(row: Mapping, key: str) -> float:
        if key == "errors_0.5" and key not in row:
            return float(row.get("fn_0.5") or 0) + float(row.get("fp_0.5") or 0)
        v = row.get(key)
        return float(v) if v is not None and np.isfinite(float(v)) else 0.0

    scored = [i for i, r in enumerate(rows) if r.get("scored", True)]
    return sorted(scored, key=lambda i: tuple(-value(rows[i], k) for k in keys))[:n]


def image_view(task: ImageTask, title: str, resize: str) -> View:
    """The picture data of one image task: its photo, ground truth and (resized) prediction."""
    gt, _, problems = read_ground_truth(task)
    if problems:
        gt = gt.reshape(0, 1, 1)
    size = gt.shape[-2:]
    if task.pred is not None:
        pred = task.pred
    elif task.pred_folder is not None and Path(task.pred_folder).is_dir():
        pred = read_mattes(Path(task.pred_folder), size, resize).alphas
    else:
        pred = gt[:0]
    return View(title, task.image, gt, pred)


def video_frame_view(task: VideoTask, frame: str, title: str, resize: str) -> View:
    """The picture data of one frame of a video task."""
    name, files, photo = next(f for f in task.frames if f[0] == frame)
    gt_task = ImageTask(name, gt_files=tuple(files[k] for k in sorted(files, key=frame_key)), image=photo)
    view = image_view(gt_task, title, resize)
    if task.pred_dir is not None:
        folder = Path(task.pred_dir)
        match = next(
            (d for d in folder.iterdir() if d.is_dir() and frame_key(d.name) == frame_key(frame)), None
        )
        if match is not None:
            view.pred = read_mattes(match, view.gt.shape[-2:], resize).alphas
    return view


def row_title(row: dict) -> str:
    """A picture title from a per_image.csv row: name, mask set, failures and error."""
    bits = [str(row.get("mask_set", "")), str(row["name"])]
    if "fn_0.5" in row:
        bits.append(f"missed {row['fn_0.5']}, wrong {row['fp_0.5']} @0.5")
    if row.get("MAD_x1e3") is not None:
        bits.append(f"MAD x1e3 {row['MAD_x1e3']:.2f}")
    return " | ".join(b for b in bits if b)
