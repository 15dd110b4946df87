"""Stable person indices across video frames: each frame's mattes matched to the previous frame's by IoU."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every mask of `a` (Ka, H, W) bool and every mask of `b` (Kb, H, W) bool -> (Ka, Kb)."""
    a2 = a.reshape(len(a), -1).astype(np.float32)
    b2 = b.reshape(len(b), -1).astype(np.float32)
    inter = a2 @ b2.T
    union = a2.sum(1)[:, None] + b2.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


class IoUTracker:
    """Gives each person a track id that persists while consecutive frames overlap by IoU >= `min_iou`.

    People are not re-identified after they disappear: a person who comes back gets a new id.
    """

    def __init__(self, min_iou: float = 0.3, alpha_threshold: float = 0.5) -> None:
        self.min_iou = min_iou
        self.alpha_threshold = alpha_threshold
        self._masks: np.ndarray | None = None  # (K, H, W) bool of the previous frame
        self._ids: np.ndarray = np.zeros(0, dtype=np.int64)
        self._next_id = 0

    def update(self, alphas: np.ndarray) -> np.ndarray:
        """Track ids (K,) for this frame's mattes `alphas` (K, H, W)."""
        masks = alphas > self.alpha_threshold
        ids = np.full(len(masks), -1, dtype=np.int64)
        if self._masks is not None and len(self._masks) and len(masks):
            iou = mask_iou(masks, self._masks)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.min_iou:
                    ids[r] = self._ids[c]
        for k in np.flatnonzero(ids < 0):
            ids[k] = self._next_id
            self._next_id += 1
        self._masks, self._ids = masks, ids
        return ids
