"""The picture of a scored run's worst images: ground truth next to prediction, each person in its colour.

Which images are the worst is the evaluation's to say (`e2e_him.evaluation.worst`). A predicted person takes
the colour of the ground-truth person it is paired with (Hungarian on IoU); unpaired predictions get further
colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from e2e_him.data.io import ImageReadError, read_image
from e2e_him.metrics.matching import iou_matrix, pair_by_iou
from e2e_him.visual.images import shrink
from e2e_him.visual.overlays import overlay_instances

PANEL_SIDE = 480  # long side of each panel, pixels


@dataclass
class View:
    """One image of the picture: title, photo (None: black), ground truth (K, H, W), prediction (P, H, W)."""

    title: str
    image: Path | None
    gt: np.ndarray
    pred: np.ndarray


def colour_order(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Predictions reordered so that pred[k] is the one paired with person k (zeros if none), extras after."""
    if len(pred) == 0 or len(gt) == 0:
        return pred
    paired = pair_by_iou(iou_matrix(torch.from_numpy(pred), torch.from_numpy(gt), 0.5))
    used = {p for p in paired if p is not None}
    slots = [pred[p] if p is not None else np.zeros_like(gt[0]) for p in paired]
    extras = [pred[k] for k in range(len(pred)) if k not in used]
    return np.stack(slots + extras)


def panels(view: View, side: int = PANEL_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """(ground-truth overlay, prediction overlay), uint8 (h, w, 3), at most `side` pixels long."""
    h, w = view.gt.shape[-2:] if view.gt.ndim == 3 and view.gt.shape[-1] else view.pred.shape[-2:]
    photo = np.zeros((h, w, 3), np.uint8)
    if view.image is not None:
        try:
            img = read_image(view.image)
            photo = img if img.shape[:2] == (h, w) else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        except ImageReadError:
            pass
    small = shrink(photo, side)
    sh, sw = small.shape[:2]

    def fit(alphas: np.ndarray) -> np.ndarray:
        return (
            np.stack([cv2.resize(a, (sw, sh), interpolation=cv2.INTER_AREA) for a in alphas])
            if len(alphas)
            else alphas.reshape(0, sh, sw)
        )

    pred = colour_order(view.gt, view.pred)
    return overlay_instances(small, fit(view.gt)), overlay_instances(small, fit(pred))


def save_worst_images(views: Sequence[View], path: str | Path, side: int = PANEL_SIDE) -> Path | None:
    """Save one row per view (ground truth | prediction) as a picture; None when there is nothing to show."""
    if not views:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(views), 2, figsize=(2 * 4.2, 3.4 * len(views)), squeeze=False)
    for r, view in enumerate(views):
        gt_panel, pred_panel = panels(view, side)
        for c, (panel, label) in enumerate(
            [
                (gt_panel, f"ground truth ({len(view.gt)} people)"),
                (pred_panel, f"prediction ({len(view.pred)})"),
            ]
        ):
            ax = axes[r][c]
            ax.imshow(panel)
            ax.set_title(f"{view.title}\n{label}" if c == 0 else label, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
