"""Stable person ids across video frames: each frame's mattes matched to the tracks by mask IoU, with a memory
of lost tracks so that a person hidden for a few frames gets the same id back (ours, not the paper's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every mask of `a` (Ka, H, W) bool and every mask of `b` (Kb, H, W) bool -> (Ka, Kb)."""
    a2 = a.reshape(len(a), -1).astype(np.float32)
    b2 = b.reshape(len(b), -1).astype(np.float32)
    inter = a2 @ b2.T
    union = a2.sum(1)[:, None] + b2.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def mask_containment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fraction of every mask of `a` (Ka, H, W) bool that lies inside every mask of `b` (Kb, H, W) bool."""
    a2 = a.reshape(len(a), -1).astype(np.float32)
    b2 = b.reshape(len(b), -1).astype(np.float32)
    inter = a2 @ b2.T
    return inter / np.maximum(a2.sum(1)[:, None], 1.0)


def _assign(iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """One-to-one (row, col) pairs maximising the summed IoU, each pair with IoU >= min_iou."""
    if not iou.size:
        return []
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]


@dataclass
class Track:
    """One person: its id, its last mask, its last mask of full size (before an occlusion shrank it), its
    peak area (slowly decaying, so that a person walking away still refreshes it), and the frames since it
    was last seen."""

    id: int
    mask: np.ndarray
    full_mask: np.ndarray
    area: float
    age: int = 0


class IoUTracker:
    """Gives each person a track id that persists across frames.

    Every frame, mattes are matched one-to-one to the tracks seen in the previous frame by mask IoU
    (>= `min_iou`, Hungarian assignment); the ones left over are matched the same way to the lost tracks,
    those not seen for 1..`max_age` frames, by the best of: IoU with their last mask, IoU with their last
    mask of full size, and the fraction of the new mask inside that one (a person hidden behind another
    fades to a sliver on one side and comes back as a sliver on the other). A track unseen for longer than
    `max_age` frames is forgotten; a person with no match gets a new id.

    Args:
        min_iou: minimum mask IoU of a match.
        alpha_threshold: a matte's mask is alpha > this.
        max_age: frames a lost track is remembered (0: the frame-to-frame tracker, no memory).
        full_ratio: a mask of at least this fraction of the track's peak area is "of full size".
    """

    def __init__(
        self, min_iou: float = 0.3, alpha_threshold: float = 0.5, max_age: int = 30, full_ratio: float = 0.85
    ) -> None:
        self.min_iou = min_iou
        self.alpha_threshold = alpha_threshold
        self.max_age = max_age
        self.full_ratio = full_ratio
        self.tracks: list[Track] = []
        self._next_id = 0

    @property
    def ids_issued(self) -> int:
        """How many different ids the tracker has given (people + id switches, for a video without exits)."""
        return self._next_id

    def _match(
        self, masks: np.ndarray, tracks: list[Track], free: list[int], lost: bool
    ) -> list[tuple[int, int]]:
        """(mask index, track index) pairs among the masks `free`."""
        if not free or not tracks:
            return []
        current = masks[free]
        score = mask_iou(current, np.stack([t.mask for t in tracks]))
        if lost:  # a person coming back from behind another shows a sliver inside where they were
            full = np.stack([t.full_mask for t in tracks])
            score = np.maximum(score, np.maximum(mask_iou(current, full), mask_containment(current, full)))
        return [(free[r], c) for r, c in _assign(score, self.min_iou)]

    def update(self, alphas: np.ndarray) -> np.ndarray:
        """Track ids (K,) for this frame's mattes `alphas` (K, H, W)."""
        masks = np.asarray(alphas) > self.alpha_threshold
        ids = np.full(len(masks), -1, dtype=np.int64)
        seen = [t for t in self.tracks if t.age == 0]
        lost = [t for t in self.tracks if 0 < t.age <= self.max_age]
        matched: set[int] = set()
        for group, is_lost in ((seen, False), (lost, True)):
            free = [k for k in range(len(masks)) if ids[k] < 0]
            for k, j in self._match(masks, group, free, is_lost):
                track = group[j]
                ids[k] = track.id
                matched.add(track.id)
                area = float(masks[k].sum())
                track.area = max(area, 0.98 * track.area)
                if area >= self.full_ratio * track.area:
                    track.full_mask = masks[k]
                track.mask, track.age = masks[k], 0
        for track in self.tracks:
            if track.id not in matched:
                track.age += 1
        self.tracks = [t for t in self.tracks if t.age <= self.max_age]
        for k in np.flatnonzero(ids < 0):
            ids[k] = self._next_id
            area = float(masks[k].sum())
            self.tracks.append(Track(self._next_id, masks[k], masks[k], area))
            self._next_id += 1
        return ids


def id_switches(
    gt_masks: Sequence[np.ndarray],
    gt_ids: Sequence[np.ndarray],
    pred_masks: Sequence[np.ndarray],
    pred_ids: Sequence[np.ndarray],
    min_iou: float = 0.5,
) -> int:
    """Identity switches (the CLEAR-MOT count, Bernardin and Stiefelhagen 2008) of a tracked video.

    Per frame, true people are matched one-to-one to predicted people (mask IoU >= `min_iou`); a switch is a
    true person matched to a different predicted id than at its previous match.

    Args:
        gt_masks: per frame, (G, H, W) bool masks of the true people.
        gt_ids: per frame, (G,) their identities.
        pred_masks: per frame, (P, H, W) bool predicted masks.
        pred_ids: per frame, (P,) their track ids.
        min_iou: IoU of a match.
    """
    last: dict[int, int] = {}
    switches = 0
    for gm, gi, pm, pi in zip(gt_masks, gt_ids, pred_masks, pred_ids):
        if not len(gm) or not len(pm):
            continue
        for g, p in _assign(mask_iou(np.asarray(gm, bool), np.asarray(pm, bool)), min_iou):
            person, track = int(gi[g]), int(pi[p])
            if person in last and last[person] != track:
                switches += 1
            last[person] = track
    return switches
